"""The Settings tab's Maintenance section (windows and holds, operators and up), the header badges, the "… anyway"
confirmation of a manual start outside the window or of a held tenant, and the rollout page's waiting tenants."""

from __future__ import annotations

import re
from datetime import datetime

import time_machine
from sqlalchemy import select

from ccp.models import AuditEvent, Instance, Upgrade
from ccp.services import rollouts, windows
from tests.web.conftest import HX

NOON = datetime.fromisoformat("2026-03-03T12:00:00+00:00")  # a Tuesday, 13:00 in Berlin


def _window(db, inst):
    db.session.expire_all()
    row = db.session.get(Instance, inst.id)
    return row.window_cron, row.window_minutes, row.window_timezone


def test_an_operator_sets_a_window_and_the_header_says_when_it_opens(client, login, post, db, tenant):
    with time_machine.travel(NOON):  # the session is signed with the clock's time: log in on the same clock
        login("operator")
        page = client.get(f"/instances/{tenant.slug}/settings").get_data(as_text=True)
        assert 'id="maintenance"' in page and "Only admins change settings." in page
        assert '<option value="Europe/Berlin">' in page
        resp = post(f"/instances/{tenant.slug}/window",
                    {"cron": "0 2 * * *", "minutes": "120", "timezone": "Europe/Berlin"})
        body = resp.get_data(as_text=True)
        assert resp.status_code == 200 and "Maintenance window saved." in body
        assert 'id="instance-facts" class="facts" hx-swap-oob="true"' in body  # the header follows
        assert "Window: daily 02:00–04:00 Europe/Berlin, opens Wed 02:00 Europe/Berlin (in 13 h)" in body
        assert _window(db, tenant) == ("0 2 * * *", 120, "Europe/Berlin")
        page = client.get(f"/instances/{tenant.slug}").get_data(as_text=True)
        assert 'id="window-badge"' in page and "badge-closed" in page
        resp = post(f"/instances/{tenant.slug}/window/clear")
        assert resp.status_code == 200 and _window(db, tenant) == (None, None, None)
        assert "No window: CCP may upgrade this tenant at any time." in resp.get_data(as_text=True)


def test_bad_window_fields_are_marked_and_nothing_is_saved(client, login, post, db, tenant):
    login("operator")
    windows.set_window(tenant, "0 3 * * *", 30, None, actor="test")
    resp = post(f"/instances/{tenant.slug}/window", {"cron": "0 25 * * *", "minutes": "0", "timezone": "Mars/Base"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "Nothing was saved" in body
    for field in ("cron", "minutes", "timezone"):
        assert f'id="e-{field}"' in body
    assert 'value="0 25 * * *"' in body and 'value="Mars/Base"' in body  # what was typed stays in the fields
    assert _window(db, tenant) == ("0 3 * * *", 30, None)


def test_hold_and_release_from_the_settings_tab(client, login, post, db, tenant):
    user = login("operator")
    resp = post(f"/instances/{tenant.slug}/hold", {"reason": "", "until": "2000-01-01T00:00"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'id="e-reason"' in body and 'id="e-until"' in body
    resp = post(f"/instances/{tenant.slug}/hold", {"reason": "waiting for sign-off", "until": ""})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="hold-badge"' in body
    assert f"Held until released (waiting for sign-off), by user:{user.username}" in body
    db.session.expire_all()
    assert db.session.get(Instance, tenant.id).hold_reason == "waiting for sign-off"
    resp = post(f"/instances/{tenant.slug}/hold/release")
    assert resp.status_code == 200 and "Not held." in resp.get_data(as_text=True)
    actions = [a for (a,) in db.session.execute(select(AuditEvent.action).where(
        AuditEvent.action.like("instance.hold.%")).order_by(AuditEvent.id))]
    assert actions == ["instance.hold.set", "instance.hold.clear"]


def test_a_hold_end_is_read_on_the_tenants_clock(client, login, post, db, tenant):
    windows.set_window(tenant, "0 2 * * *", 60, "America/New_York", actor="test")
    with time_machine.travel(NOON):
        login("operator")
        assert post(f"/instances/{tenant.slug}/hold", {"reason": "audit", "until": "2026-03-10T09:00"}).status_code \
            == 200
        db.session.expire_all()
        until = db.session.get(Instance, tenant.id).hold_until
        assert until.replace(tzinfo=None) == datetime(2026, 3, 10, 13, 0)  # 09:00 EDT
        page = client.get(f"/instances/{tenant.slug}/settings").get_data(as_text=True)
        assert "Held until 2026-03-10 09:00 America/New_York" in page and 'value="2026-03-10T09:00"' in page


def test_viewers_see_no_maintenance_forms_and_cannot_post(client, login, post, tenant):
    login("viewer")
    assert 'id="maintenance"' not in client.get(f"/instances/{tenant.slug}/settings").get_data(as_text=True)
    for path in ("window", "window/clear", "hold", "hold/release"):
        assert post(f"/instances/{tenant.slug}/{path}", {"reason": "x", "cron": "0 2 * * *"}).status_code == 403


def test_quick_upgrade_outside_the_window_asks_and_goes_when_confirmed(client, login, post, db, tenant):
    with time_machine.travel(NOON):
        login("operator")
        windows.set_window(tenant, "0 2 * * *", 120, "Europe/Berlin", actor="test")
        resp = post(f"/instances/{tenant.slug}/quick-upgrade")
        body = resp.get_data(as_text=True)
        assert resp.status_code == 409 and 'data-code="outside_window"' in body
        assert "opens Wed 02:00 Europe/Berlin" in body and "Quick Upgrade anyway" in body
        assert 'name="outside_window_ok" value="1"' in body
        assert db.session.execute(select(Upgrade)).first() is None
        resp = post(f"/instances/{tenant.slug}/quick-upgrade", {"outside_window_ok": "1"})
        assert resp.status_code == 202, resp.get_data(as_text=True)[:300]
    event = db.session.execute(select(AuditEvent).filter_by(action="upgrade.start.quick", result="ok")).scalar_one()
    assert event.detail["outside_window"] is True


def test_apply_of_a_held_tenant_outside_its_window_asks_for_both(client, login, post, db, tenant):
    with time_machine.travel(NOON):
        login("operator")
        windows.set_window(tenant, "0 2 * * *", 120, "Europe/Berlin", actor="test")
        windows.set_hold(tenant, "pinned for the demo", None, actor="user:ann")
        preview = post(f"/instances/{tenant.slug}/release/preview", {"tag": "v2"}).get_data(as_text=True)
        assert 'id="maintenance-note"' in preview and "pinned for the demo" in preview
        plan = re.search(r'name="plan" value="([0-9a-f]{64})"', preview).group(1)
        first = post(f"/instances/{tenant.slug}/release/apply", {"tag": "v2", "plan": plan})
        assert first.status_code == 409 and first.headers["HX-Retarget"] == "#release-preview"
        text = first.get_data(as_text=True)
        assert 'data-code="held"' in text and "Apply anyway" in text and 'name="held_ok" value="1"' in text
        assert f'name="plan" value="{plan}"' in text
        second = post(f"/instances/{tenant.slug}/release/apply", {"tag": "v2", "plan": plan, "held_ok": "1"})
        text = second.get_data(as_text=True)
        assert second.status_code == 409 and 'data-code="outside_window"' in text
        assert 'name="held_ok" value="1"' in text and 'name="outside_window_ok" value="1"' in text
        third = post(f"/instances/{tenant.slug}/release/apply",
                     {"tag": "v2", "plan": plan, "held_ok": "1", "outside_window_ok": "1"})
        assert third.status_code == 202
    event = db.session.execute(select(AuditEvent).filter_by(action="upgrade.start.release", result="ok")).scalar_one()
    assert event.detail["held"] is True and event.detail["outside_window"] is True


def test_the_rollout_page_says_who_waits_and_until_when(client, login, db, tenant_factory, run_worker):
    with time_machine.travel(NOON):
        login("viewer")
        tenant_factory(slug="page-open")
        waits = tenant_factory(slug="page-waits")
        held = tenant_factory(slug="page-held")
        windows.set_window(waits, "0 2 * * *", 120, "Europe/Berlin", actor="test")
        windows.set_hold(held, "customer asked", None, actor="user:ann")
        rollout = rollouts.start_rollout("v2", canary=5, actor="user:ann")
        run_worker()
        page = client.get(f"/rollouts/{rollout.id}").get_data(as_text=True)
        assert "Waits for its window" in page and "until 2026-03-04 01:00 UTC" in page
        assert "page-held" in page and "customer asked" in page
        widget = client.get(f"/rollouts/{rollout.id}/progress", headers=HX)
        assert widget.status_code == 200 and "Waits for its window" in widget.get_data(as_text=True)


def test_the_rollout_preview_names_held_tenants_and_those_outside_their_window(client, login, post, tenant_factory):
    with time_machine.travel(NOON):
        login("operator")
        tenant_factory(slug="pv-open")
        windows.set_window(tenant_factory(slug="pv-later"), "0 2 * * *", 120, "Europe/Berlin", actor="test")
        windows.set_hold(tenant_factory(slug="pv-held"), "launch week", None, actor="user:ann")
        resp = post("/rollouts/preview", data={"tag": "v2", "canary": "1", "waveSize": "5"}, token_from="/rollouts")
        body = resp.get_data(as_text=True)
        assert resp.status_code == 200, body[:300]
        assert "2 tenants in 2 waves" in body and "1 held (skipped)" in body
        assert 'id="preview-held"' in body and "launch week" in body and "held until released by user:ann" in body
        assert 'id="preview-waiting"' in body
        assert "pv-later</strong>: outside its window now (daily 02:00–04:00 Europe/Berlin; opens Wed 02:00 " \
               "Europe/Berlin): its wave waits for it" in body
