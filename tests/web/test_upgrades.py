"""The upgrade page, the polled status widget (lean read, reused while unchanged) and cancelling from it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from flask import render_template
from sqlalchemy import event, update

from ccp.models import Upgrade, UpgradeStep, User, utcnow
from ccp.services import changes
from ccp.web.presenters import status_view
from ccp.web.upgrades import widget_view
from tests.factories import make_instance
from tests.web.conftest import HX

STEPS = ("render", "check_plan", "pre_upgrade", "backup", "write", "env_patch", "pull", "up", "verify", "post_upgrade")


def _upgrade(db, status: str, done: int = 0, running: bool = False, failed: bool = False, **extra) -> Upgrade:
    """A release upgrade on a new instance with `done` succeeded steps, then a running or failed one."""
    inst = make_instance(name="Shop <&> Co")
    now = utcnow()
    upgrade = Upgrade(instance_id=inst.id, kind="release", status=status, from_tag="v1", to_tag="v2", actor="ann",
                      started_at=now if status != "queued" else None, **extra)
    db.session.add(upgrade)
    db.session.flush()
    for i in range(done):
        db.session.add(UpgradeStep(upgrade_id=upgrade.id, position=i, name=STEPS[i], status="succeeded",
                                   started_at=now, finished_at=now + timedelta(seconds=i + 0.5)))
    if running or failed:
        db.session.add(UpgradeStep(upgrade_id=upgrade.id, position=done, name=STEPS[done],
                                   status="running" if running else "failed", started_at=now,
                                   finished_at=None if running else now + timedelta(seconds=3),
                                   output_tail="pulling <layer>\nstill pulling"))
    db.session.commit()
    return upgrade


STATES = {
    "queued": dict(status="queued"),
    "running": dict(status="running", done=6, running=True),
    "cancel requested": dict(status="running", done=2, running=True, cancel_requested=True),
    "succeeded": dict(status="succeeded", done=10, finished_at=utcnow() + timedelta(seconds=9)),
    "rolled back": dict(status="rolled_back", done=7, failed=True, error="service web exited (code 1)",
                        finished_at=utcnow() + timedelta(seconds=12)),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_lean_widget_matches_the_orm_rendering(app, db, client, login, state, role):
    """The polled path (columns only) renders exactly what the ORM path (instance page, apply) renders."""
    login(role)
    upgrade = _upgrade(db, **STATES[state])
    response = client.get(f"/upgrades/{upgrade.id}/status", headers=HX)
    db.session.expire_all()
    with app.test_request_context(headers=HX):
        from flask_login import login_user

        from ccp.web.auth import load_user

        from flask import session

        from ccp.web.auth import SESSION_EPOCH_KEY

        user = db.session.execute(db.select(User).filter_by(role=role)).scalars().first()
        session[SESSION_EPOCH_KEY] = user.session_epoch
        login_user(load_user(str(user.id)))
        expected = render_template("upgrades/_status.html", view=status_view(db.session.get(Upgrade, upgrade.id)),
                                   fragment=True)
        assert widget_view(upgrade.id) == status_view(db.session.get(Upgrade, upgrade.id))
    assert response.get_data(as_text=True) == expected
    final = upgrade.status not in ("queued", "running")
    assert response.status_code == (286 if final else 200)
    assert response.headers["Cache-Control"] == "no-store" and "HX-Request" in response.headers["Vary"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert ("hx-trigger" in expected) is not final
    assert ("Cancel</button>" in expected) is (role == "operator" and not final)


def test_widget_shows_the_states_labels_cause_and_tail(db, client, login):
    login("viewer")
    running = client.get(f"/upgrades/{_upgrade(db, **STATES['running']).id}/status", headers=HX).get_data(True)
    assert "Running" in running and "Steps: 6 of 10 done" in running and "Pull images" in running
    assert "pulling &lt;layer&gt;" in running and "Shop" not in running  # tail escaped; name only in the confirm
    broken = client.get(f"/upgrades/{_upgrade(db, **STATES['rolled back']).id}/status", headers=HX).get_data(True)
    assert "Rolled back" in broken and "Cause:</strong> service web exited (code 1)" in broken
    assert " · took " in broken


def test_reused_widget_follows_every_announced_change(db, client, login):
    """A poll reuses the widget while the upgrade is unchanged; a new tail or a new status, announced as every
    writer does after its commit, is never served stale."""
    login("operator")
    upgrade = _upgrade(db, **STATES["running"])
    url = f"/upgrades/{upgrade.id}/status"
    first = client.get(url, headers=HX).get_data(as_text=True)
    assert client.get(url, headers=HX).get_data(as_text=True) == first  # unchanged rows, same markup
    db.session.execute(update(UpgradeStep).where(UpgradeStep.upgrade_id == upgrade.id, UpgradeStep.status == "running")
                       .values(output_tail="layer 3 done"))
    db.session.commit()
    changes.announce(upgrade.id)
    assert "layer 3 done" in client.get(url, headers=HX).get_data(as_text=True)
    db.session.execute(update(Upgrade).where(Upgrade.id == upgrade.id)
                       .values(status="succeeded", finished_at=utcnow()))
    db.session.commit()
    changes.announce(upgrade.id)
    final = client.get(url, headers=HX)
    assert final.status_code == 286 and "Succeeded" in final.get_data(as_text=True)


CHANGE_ELSEWHERE = """
from ccp.app import create_app
from ccp.services.changes import announce
from ccp.extensions import db
from ccp.models import UpgradeStep
app = create_app()
with app.app_context():
    step = db.session.execute(db.select(UpgradeStep).filter_by(upgrade_id={id}, status="running")).scalar_one()
    step.output_tail = "changed by another process"
    db.session.commit()
    announce({id})
"""


def test_poll_reuses_its_read_until_another_process_announces_a_change(app, app_env, db, client, login):
    """While no change notice arrives, a poll serves the last read without touching the database; a change
    committed and announced by another process (a worker) reaches the next polls through Redis within moments."""
    login("viewer")
    upgrade = _upgrade(db, **STATES["running"])
    url = f"/upgrades/{upgrade.id}/status"
    feed = changes.current_feed()
    deadline = time.monotonic() + 5
    while not feed.subscribed.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    first = client.get(url, headers=HX).get_data(as_text=True)
    reads = []
    listener = lambda *args: reads.append(args[2]) if "upgrade_steps" in args[2] else None  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert client.get(url, headers=HX).get_data(as_text=True) == first
        assert reads == [], "an unchanged upgrade was read again"
        subprocess.run([sys.executable, "-c", CHANGE_ELSEWHERE.format(id=upgrade.id)], env={**os.environ, **app_env},
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 3
        while "changed by another process" not in client.get(url, headers=HX).get_data(as_text=True):
            assert time.monotonic() < deadline, "the other process's change was not shown within 3 s"
            time.sleep(0.02)
        assert len(reads) >= 1
        app.config["CCP"].status_reuse_s = 0  # reuse switched off: every poll reads
        before = len(reads)
        client.get(url, headers=HX)
        client.get(url, headers=HX)
        assert len(reads) == before + 2
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)


def test_fragment_has_no_csrf_field_and_page_has_one(db, client, login):
    """htmx sends the page's token as X-CSRFToken; the full page keeps the field for a plain form post."""
    login("operator")
    upgrade = _upgrade(db, **STATES["running"])
    fragment = client.get(f"/upgrades/{upgrade.id}/status", headers=HX).get_data(as_text=True)
    page = client.get(f"/upgrades/{upgrade.id}").get_data(as_text=True)
    assert "Cancel</button>" in fragment and 'name="csrf_token"' not in fragment
    assert "<html" in page and re.search(r'<form method="post"[^>]*>\s*<input type="hidden" name="csrf_token"', page)
    boosted = client.get(f"/upgrades/{upgrade.id}/status", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True) and boosted.status_code == 200


@pytest.mark.parametrize("upgrade_id", [999999, 2**31, 10**15])
def test_unknown_upgrade_is_404(client, login, post, upgrade_id):
    """Also past the 32-bit id range, where PostgreSQL would refuse the parameter (500 before)."""
    login("operator")
    assert client.get(f"/upgrades/{upgrade_id}/status", headers=HX).status_code == 404
    assert client.get(f"/upgrades/{upgrade_id}").status_code == 404
    assert post(f"/upgrades/{upgrade_id}/cancel").status_code == 404


def test_refused_cancel_says_why(db, client, login, post):
    login("operator")
    upgrade = _upgrade(db, **STATES["succeeded"])
    response = post(f"/upgrades/{upgrade.id}/cancel")
    body = response.get_data(as_text=True)
    assert response.status_code == 409 and 'id="upgrade-status"' in body
    assert 'role="alert">Not cancelled: this upgrade had already ended (Succeeded).</p>' in body


def test_cancel_running_marks_it_and_keeps_polling(db, client, login, post):
    login("operator")
    upgrade = _upgrade(db, **STATES["running"])
    response = post(f"/upgrades/{upgrade.id}/cancel")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Cancel requested" in body and "hx-trigger" in body


def test_viewer_cannot_cancel(db, client, login, post):
    login("viewer")
    upgrade = _upgrade(db, **STATES["running"])
    assert post(f"/upgrades/{upgrade.id}/cancel").status_code == 403
    db.session.expire_all()
    assert not db.session.get(Upgrade, upgrade.id).cancel_requested


def test_user_deactivated_elsewhere_sees_only_the_polled_widget_briefly(app, db, client, login, post):
    """A change made by another process (here: a bulk UPDATE, which fires no ORM event) reaches the polled widget
    within CCP_USER_RECHECK_S, and every other request at once."""
    user = login("operator")
    upgrade = _upgrade(db, **STATES["running"])
    url = f"/upgrades/{upgrade.id}/status"
    app.config["CCP_USER_RECHECK_S"] = 60
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/").get_data(True)).group(1)
    assert client.get(url, headers=HX).status_code == 200  # checked now
    db.session.execute(update(User).where(User.id == user.id).values(active=False))
    db.session.commit()
    assert client.get(url, headers=HX).status_code == 200  # within the bound: the widget may still be polled
    refused = client.post(f"/upgrades/{upgrade.id}/cancel", headers={**HX, "X-CSRFToken": token})
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]  # a POST always checks
    db.session.expire_all()
    assert not db.session.get(Upgrade, upgrade.id).cancel_requested
    assert client.get(f"/upgrades/{upgrade.id}").status_code == 302  # so does every page


def test_polled_widget_rechecks_the_user_after_the_bound(app, db, client, login):
    user = login("operator")
    upgrade = _upgrade(db, **STATES["running"])
    url = f"/upgrades/{upgrade.id}/status"
    assert client.get(url, headers=HX).status_code == 200
    db.session.execute(update(User).where(User.id == user.id).values(active=False))
    db.session.commit()
    app.config["CCP_USER_RECHECK_S"] = 0  # the bound has passed
    assert client.get(url, headers=HX).status_code == 302


def test_role_change_in_this_process_applies_at_once(db, client, login):
    user = login("operator")
    upgrade = _upgrade(db, **STATES["running"])
    url = f"/upgrades/{upgrade.id}/status"
    assert "Cancel</button>" in client.get(url, headers=HX).get_data(as_text=True)
    db.session.get(User, user.id).role = "viewer"
    db.session.commit()
    assert "Cancel</button>" not in client.get(url, headers=HX).get_data(as_text=True)


def test_security_headers_keep_what_a_view_set(app):
    """The baseline headers are added once each; a header a view set (e.g. a stricter CSP) is kept."""
    from flask import make_response

    from ccp.web.security import HEADERS, add_security_headers

    with app.test_request_context("/"):
        plain = add_security_headers(make_response("x"))
        assert all(plain.headers.getlist(name) == [value] for name, value in HEADERS.items())
        tightened = make_response("x")
        tightened.headers["content-security-policy"] = "default-src 'none'"
        tightened = add_security_headers(tightened)
        assert tightened.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
        assert tightened.headers["X-Frame-Options"] == "DENY"


def test_widget_says_step_n_of_m_how_long_it_runs_and_where_it_stopped(db, client, login):
    login("viewer")
    queued = client.get(f"/upgrades/{_upgrade(db, **STATES['queued']).id}/status", headers=HX).get_data(True)
    assert "<strong>Step 1 of 10</strong> next: Render · waiting for a worker" in queued
    upgrade = _upgrade(db, **STATES["running"])
    began = utcnow() - timedelta(seconds=75)
    db.session.execute(update(UpgradeStep).where(UpgradeStep.upgrade_id == upgrade.id, UpgradeStep.status == "running")
                       .values(started_at=began))
    db.session.commit()
    changes.announce(upgrade.id)
    running = client.get(f"/upgrades/{upgrade.id}/status", headers=HX).get_data(True)
    assert re.search(r'<strong>Step 7 of 10</strong>: Pull images · running for <span class="elapsed" '
                     rf'data-since="{re.escape(began.isoformat())}" data-elapsed="7[5-9]">1 min 1[5-9] s</span>', running)
    assert '<li class="step step-running" aria-current="step">' in running
    assert "Output of “Pull images” so far" in running and 'data-active="true"' in running
    broken = client.get(f"/upgrades/{_upgrade(db, **STATES['rolled back']).id}/status", headers=HX).get_data(True)
    assert "Stopped at <strong>step 8 of 8</strong>: Start" in broken and 'data-active="false"' in broken
    done = client.get(f"/upgrades/{_upgrade(db, **STATES['succeeded']).id}/status", headers=HX).get_data(True)
    assert "10 of 10 steps done" in done and "running for" not in done and 'class="elapsed"' not in done


def test_running_times_are_measured_from_the_starts():
    from ccp.web.presenters import format_elapsed

    assert [format_elapsed(s) for s in (None, -3, 0.9, 59.99, 60, 185, 3600 + 125)] == [
        "0 s", "0 s", "0 s", "59 s", "1 min 00 s", "3 min 05 s", "1 h 02 min"]


def test_final_widget_refreshes_the_instance_header_out_of_band(app, db, client, login):
    """The final (286) answer carries the instance's header line with hx-swap-oob: the new tag, when the agent was
    last seen, the attention badge. It is the same for every user, so the reused widget may keep it."""
    from ccp.models import Instance

    login("operator")
    upgrade = _upgrade(db, **STATES["running"])
    url = f"/upgrades/{upgrade.id}/status"
    assert "hx-swap-oob" not in client.get(url, headers=HX).get_data(True)  # nothing to refresh while it runs
    seen = utcnow().replace(microsecond=0)
    db.session.execute(update(Instance).where(Instance.id == upgrade.instance_id)
                       .values(image_tag="v2", last_seen_at=seen, attention="disk almost full"))
    db.session.execute(update(Upgrade).where(Upgrade.id == upgrade.id).values(status="succeeded",
                                                                               finished_at=utcnow()))
    db.session.commit()
    changes.announce(upgrade.id)
    final = client.get(url, headers=HX)
    body = final.get_data(True)
    assert final.status_code == 286 and body.index("</section>") < body.index('id="instance-facts"')
    header = body[body.index('<p id="instance-facts"'):]
    assert header.startswith('<p id="instance-facts" class="facts" hx-swap-oob="true">Tag <code>v2</code>')
    assert f"agent seen <time datetime=\"{seen.isoformat()}\">{seen:%Y-%m-%d %H:%M:%S} UTC</time>" in header
    assert "Needs attention: disk almost full" in header and "csrf" not in header.lower()
    again = client.get(url, headers=HX)  # reused: the same final answer, header included
    assert again.status_code == 286 and again.get_data(True) == body
    page = client.get(f"/upgrades/{upgrade.id}").get_data(True)  # the upgrade page holds the swap's target
    assert page.count('id="instance-facts"') == 1 and "hx-swap-oob" not in page
    instance_page = client.get(f"/instances/{upgrade.instance.slug}").get_data(True)
    assert instance_page.count('id="instance-facts"') == 1 and "hx-swap-oob" not in instance_page
    assert "Tag <code>v2</code>" in instance_page


def test_cancelling_a_queued_upgrade_also_refreshes_the_header(db, client, login, post):
    login("operator")
    upgrade = _upgrade(db, **STATES["queued"])
    response = post(f"/upgrades/{upgrade.id}/cancel")
    body = response.get_data(as_text=True)
    assert response.status_code == 286 and 'data-status="cancelled"' in body
    assert '<p id="instance-facts" class="facts" hx-swap-oob="true">' in body
