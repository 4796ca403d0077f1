"""Rollout pages: the list and its start form, the fleet preview a start goes through and its confirmation, a
rollout's page with its polled progress, cancelling from it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, func, select

from ccp.extensions import get_queue
from ccp.models import Rollout, Upgrade, utcnow
from ccp.services import rollouts
from tests.factories import make_instance
from tests.web.conftest import HX, csrf_token

FORM = {"tag": "v2", "canary": "1", "waveSize": "5"}
_EXPECT = re.compile(r'<input type="hidden" name="expect" value="([0-9a-f]{64})">')


def _count(db) -> int:
    return db.session.execute(select(func.count(Rollout.id))).scalar()


def _preview(post, **fields):
    return post("/rollouts/preview", data={**FORM, **fields}, token_from="/rollouts")


def _start(post, **fields):
    """Preview the rollout, then press the preview's confirm button (as an operator does)."""
    preview = _preview(post, **fields)
    assert preview.status_code == 200, preview.get_data(as_text=True)[:500]
    expect = _EXPECT.search(preview.get_data(as_text=True)).group(1)
    return post("/rollouts", data={**FORM, **fields, "expect": expect}, token_from="/rollouts")


def _field_error(page: str, name: str) -> str:
    match = re.search(rf'<p class="error" id="e-{name}">([^<]*)</p>', page)
    assert match, f"no message next to {name}"
    return match.group(1)


def test_rollouts_require_login(client):
    for path in ("/rollouts", "/rollouts/1", "/rollouts/1/progress"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_viewer_sees_list_and_page_but_no_actions(db, client, login, post, tenant_factory):
    tenant_factory(slug="view-a")
    login("operator")
    rid = int(_start(post).headers["HX-Redirect"].rsplit("/", 1)[1])
    client.post("/logout", headers={"X-CSRFToken": csrf_token(client)})
    login("viewer")
    listing = client.get("/rollouts").get_data(as_text=True)
    assert 'href="/rollouts"' in listing  # the nav link
    assert f'href="/rollouts/{rid}"' in listing and "Running" in listing and "0 of 1 tenants upgraded" in listing
    assert "Start a rollout" not in listing and 'id="rollout-form"' not in listing
    page = client.get(f"/rollouts/{rid}").get_data(as_text=True)
    assert "Rollout of <code>v2</code>" in page and "view-a" in page and 'hx-trigger="every 2s"' in page
    assert "Cancel rollout" not in page
    assert _preview(post, tag="v3").status_code == 403
    assert post("/rollouts", data={**FORM, "tag": "v3", "expect": "0" * 64}).status_code == 403
    assert post(f"/rollouts/{rid}/cancel").status_code == 403
    db.session.expire_all()
    assert _count(db) == 1 and db.session.get(Rollout, rid).cancel_requested is False


def test_operator_starts_a_rollout_and_follows_it_to_the_end(db, client, login, post, tenant_factory, run_worker):
    for slug in ("ui-a", "ui-b", "ui-c"):
        tenant_factory(slug=slug)
    login("operator")
    form = client.get("/rollouts").get_data(as_text=True)
    assert 'id="rollout-form"' in form and 'value="ui-b"' in form and 'name="canary"' in form
    response = _start(post, waveSize="2")
    assert response.status_code == 204
    rollout = db.session.execute(select(Rollout)).scalar_one()
    assert response.headers["HX-Redirect"] == f"/rollouts/{rollout.id}"
    assert rollout.source == "ui" and rollout.actor.startswith("user") and rollout.status == "running"
    url = f"/rollouts/{rollout.id}/progress"
    polling = client.get(url, headers=HX)
    body = polling.get_data(as_text=True)
    assert polling.status_code == 200 and "<html" not in body and body.startswith("<section")
    assert f'hx-get="{url}"' in body and 'hx-trigger="every 2s"' in body and 'hx-swap="outerHTML"' in body
    assert polling.headers["Cache-Control"] == "no-store" and "HX-Request" in polling.headers["Vary"]
    assert "Cancel rollout</button>" in body and 'hx-confirm="Cancel the rollout of v2?' in body

    run_worker()
    db.session.expire_all()
    final = client.get(url, headers=HX)
    body = final.get_data(as_text=True)
    assert final.status_code == 286 and "hx-trigger" not in body and "Cancel rollout" not in body
    assert "3 of 3 tenants upgraded in 2 waves" in body
    assert body.count('<span class="status status-succeeded">Succeeded</span></caption>') == 2
    upgrades = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars().all()
    assert len(upgrades) == 3
    for upgrade in upgrades:
        assert f'<a href="/upgrades/{upgrade.id}">#{upgrade.id}</a>' in body
        assert f'href="/instances/{upgrade.instance.slug}"' in body
    assert body.count('<td data-label="Status"><span class="status status-succeeded">Succeeded</span></td>') == 3
    assert body.count("<code>v1</code> → <code>v2</code>") == 3
    page = client.get(f"/rollouts/{rollout.id}")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert body in page.get_data(as_text=True)  # the page includes the very same partial
    listing = client.get("/rollouts").get_data(as_text=True)
    assert "3 of 3 tenants upgraded" in listing and ">UI<" in listing
    assert '<td data-label="From → to"><code>v1</code> → <code>v2</code></td>' in listing


def test_plain_form_posts_preview_then_start_and_redirect(db, client, login, tenant_factory):
    tenant_factory(slug="plain-a")
    login("operator")
    token = csrf_token(client, "/rollouts")
    preview = client.post("/rollouts/preview", data={**FORM, "csrf_token": token})
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "<html" in page and 'id="rollout-preview"' in page
    assert 'action="/rollouts" hx-post="/rollouts"' in page.replace("\n", " ").replace("        ", "")
    expect = _EXPECT.search(page).group(1)
    response = client.post("/rollouts", data={**FORM, "csrf_token": token, "expect": expect})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/rollouts/{db.session.execute(select(Rollout.id)).scalar()}")


@pytest.mark.parametrize("fields, name, message", [
    (dict(tag="bad tag!"), "tag", "invalid image tag"),
    (dict(tag=""), "tag", "required"),
    (dict(canary="0"), "canary", "whole number from 1 to 1000"),
    (dict(waveSize="two"), "waveSize", "whole number from 1 to 1000"),
    (dict(instances=["form-a", "nope"]), "instances", "unknown instance(s): nope"),
])
def test_invalid_form_shows_the_message_next_to_the_field(db, client, login, post, tenant_factory,
                                                          fields, name, message):
    tenant_factory(slug="form-a")
    login("operator")
    response = _preview(post, **fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and page.startswith('<div id="rollout-start">')
    assert 'id="rollout-preview"' not in page
    assert message in _field_error(page, name).replace("&#39;", "'")
    assert "Nothing was started" in page
    if name == "instances":
        assert 'value="form-a" checked' in page  # what was ticked stays ticked
    assert _count(db) == 0 and get_queue().count == 0


def test_invalid_plain_post_gets_the_whole_page(db, client, login, tenant_factory):
    tenant_factory(slug="whole-a")
    login("operator")
    response = client.post("/rollouts/preview", data={**FORM, "canary": "0",
                                                      "csrf_token": csrf_token(client, "/rollouts")})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" in page and "whole number" in _field_error(page, "canary")
    assert _count(db) == 0


def test_second_start_while_one_runs_is_refused_with_a_link(db, client, login, post, tenant_factory):
    tenant_factory(slug="busy-a")
    login("operator")
    first = int(_start(post).headers["HX-Redirect"].rsplit("/", 1)[1])
    response = _start(post, tag="v3")
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "another rollout is running" in page
    assert f'<a href="/rollouts/{first}">Follow rollout #{first}</a>' in page
    assert 'value="v3"' in page  # the form keeps what was typed
    assert _count(db) == 1
    preview = _preview(post, tag="v3").get_data(as_text=True)  # the preview says so before anyone confirms
    assert f'<a href="/rollouts/{first}">#{first}</a> is running' in preview


def test_post_without_csrf_token_is_refused(db, client, login, tenant_factory):
    tenant_factory(slug="csrf-a")
    login("operator")
    response = client.post("/rollouts", data=FORM, headers=HX)
    assert response.status_code == 403 and "security token" in response.get_data(as_text=True)
    assert _count(db) == 0


def test_unknown_rollout_is_404(client, login, post):
    login("operator")
    for path in ("/rollouts/999", "/rollouts/999/progress", f"/rollouts/{2**40}"):
        assert client.get(path).status_code == 404
    assert post("/rollouts/999/cancel").status_code == 404


def test_cancel_stops_before_the_next_wave_and_a_second_cancel_says_why(db, client, login, post, tenant_factory,
                                                                        run_worker):
    tenant_factory(slug="stop-a"), tenant_factory(slug="stop-b")
    login("operator")
    rid = int(_start(post, waveSize="1").headers["HX-Redirect"].rsplit("/", 1)[1])
    rollouts.advance(rid)  # the worker starts wave 1 (its upgrade is queued)
    response = post(f"/rollouts/{rid}/cancel")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.startswith('<section id="rollout-progress"')
    assert "Cancel requested" in body and "Cancel rollout" not in body and 'hx-trigger="every 2s"' in body
    run_worker()
    db.session.expire_all()
    page = client.get(f"/rollouts/{rid}").get_data(as_text=True)
    assert "Cancelled" in page and "cancelled before wave 2" in page
    assert 'status-succeeded">Succeeded</span></td>' in page  # stop-a upgraded; wave 2 and stop-b not
    assert page.count("Not started") == 2
    again = post(f"/rollouts/{rid}/cancel")
    assert again.status_code == 409
    assert "Not cancelled: this rollout had already ended (Cancelled)." in again.get_data(as_text=True)


def test_halted_rollout_shows_why(db, client, login, post, tenant_factory, run_worker):
    tenant_factory(slug="halt-a"), tenant_factory(slug="halt-b")
    login("operator")
    rid = int(_start(post, tag="broken").headers["HX-Redirect"].rsplit("/", 1)[1])
    run_worker()
    db.session.expire_all()
    response = client.get(f"/rollouts/{rid}/progress", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 286
    assert '<strong class="status status-halted">Halted</strong>' in body
    assert "Reason:</strong> wave 1 did not succeed: halt-a rolled back" in body
    assert 'status-rolled_back">Rolled back</span>' in body and "Not started" in body  # wave 2 never ran
    assert '<td data-label="Cause"><span class="cause">' in body  # the canary's cause, on its row
    assert "0 of 2 tenants upgraded" in client.get("/rollouts").get_data(as_text=True)


def test_a_deleted_tenant_is_shown_by_id_without_a_link(db, client, login, post, tenant_factory, run_worker):
    from ccp.services.instances import delete_instance

    tenant_factory(slug="del-a")
    gone = tenant_factory(slug="del-b")
    gone_id = gone.id
    login("operator")
    rid = int(_start(post, waveSize="1").headers["HX-Redirect"].rsplit("/", 1)[1])
    delete_instance(gone, actor="test")
    run_worker()
    db.session.expire_all()
    body = client.get(f"/rollouts/{rid}/progress", headers=HX).get_data(as_text=True)
    assert f'<td data-label="Tenant">#{gone_id} (deleted)</td>' in body and 'href="/instances/del-a"' in body
    assert "/instances/del-b" not in body


def test_skipped_tenants_are_listed(db, client, login, post, tenant_factory):
    tenant_factory(slug="skip-a", tag="v2")
    login("operator")
    preview = _preview(post).get_data(as_text=True)
    assert "Nothing to do: every chosen tenant is already on <code>v2</code>" in preview
    assert 'name="expect"' not in preview  # nothing to confirm
    rid = rollouts.start_rollout("v2", actor="api", source="api").id  # the API still records one
    page = client.get(f"/rollouts/{rid}").get_data(as_text=True)
    assert 'already on <code>v2</code>: <a href="/instances/skip-a">skip-a</a>' in page
    assert "Nothing to do" in page and "Succeeded" in page and "hx-trigger" not in page


def _bulk_rollouts(db, count: int) -> None:
    inst = make_instance()
    start = _count(db)
    for i in range(start, start + count):
        rollout = Rollout(tag=f"v{i}", status="succeeded" if i % 2 else "halted", source="api", actor="bench",
                          waves=[{"instances": [inst.id], "status": "succeeded", "errors": {}}], skipped=["x"],
                          finished_at=utcnow())
        db.session.add(rollout)
        db.session.flush()
        db.session.add(Upgrade(instance_id=inst.id, kind="release", status="succeeded" if i % 2 else "rolled_back",
                               to_tag=rollout.tag, actor="bench", rollout_id=rollout.id))
    db.session.commit()


def _statements_for_list(db, client) -> int:
    db.session.remove()  # the test holds one app context; a real request starts with an empty session
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        response = client.get("/rollouts")
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert response.status_code == 200
    return len(statements)


def test_list_query_count_is_constant(db, client, login):
    login("operator")  # the form's instance list is read too
    _bulk_rollouts(db, 2)
    small = _statements_for_list(db, client)
    _bulk_rollouts(db, 48)
    page = client.get("/rollouts").get_data(as_text=True)
    assert page.count("1 of 1 tenants upgraded") == 25 and page.count("0 of 1 tenants upgraded") == 25
    assert _statements_for_list(db, client) == small, "the list reads more per rollout"
    _bulk_rollouts(db, 1)  # 51: a second page
    page = client.get("/rollouts").get_data(as_text=True)
    assert "page 1 of 2" in page and ">v0<" not in page.split("<tbody>")[1].split("</tbody>")[0]
    assert ">v0<" in client.get("/rollouts?page=2").get_data(as_text=True)


def test_preview_shows_each_tenant_and_the_waves_and_only_its_confirmation_starts(db, client, login, post,
                                                                                  tenant_factory):
    from ccp.services.instances import update_instance
    from tests import tenants

    tenant_factory(slug="pre-a")
    rotated = tenant_factory(slug="pre-b")
    update_instance(rotated, {"secrets": {**tenants.provisioned_secrets(), "SMTP_PASSWORD": "new-" + tenants.CANARY}},
                    actor="test")
    make_instance(slug="pre-dead")  # its agent (127.0.0.1:9) is down
    tenant_factory(slug="pre-on", tag="v2")
    login("operator")
    response = _preview(post, waveSize="2")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and page.startswith('<div id="rollout-start">')
    assert 'id="rollout-form"' in page and 'value="v2"' in page  # the form stays, as typed
    assert "Preview: rollout of <code>v2</code>" in page and "3 tenants in 2 waves" in page
    assert "Wave 1 · canary · 1 tenant</caption>" in page and "Wave 2 · 2 tenants</caption>" in page
    rows = re.findall(r'<tr class="(?:blocked)?">\s*<td data-label="Tenant"><a href="/instances/([a-z-]+)"', page)
    assert rows == ["pre-a", "pre-b", "pre-dead"]
    assert page.count("<code>v1</code> → <code>v2</code>") == 3
    assert page.count('<span class="status status-succeeded">Ready</span>') == 2
    assert '<span class="status status-failed">Agent unreachable</span>' in page and "127.0.0.1:9" in page
    assert "1 tenant cannot be upgraded as things stand" in page and "halts at wave 2" in page
    assert "Secrets would change on 1 tenant" in page and "<strong>pre-b</strong>: SMTP_PASSWORD" in page
    assert tenants.CANARY not in page
    assert 'Already on <code>v2</code> (skipped):\n    <a href="/instances/pre-on">pre-on</a>' in page
    assert ">Start rollout of v2 (3 tenants in 2 waves)</button>" in page
    assert 'hx-confirm="Start rollout of v2 (3 tenants in 2 waves)? 1 tenant(s) would halt it at wave 2."' in page
    assert _count(db) == 0 and get_queue().count == 0  # a preview starts nothing

    expect = _EXPECT.search(page).group(1)
    started = post("/rollouts", data={**FORM, "waveSize": "2", "expect": expect}, token_from="/rollouts")
    assert started.status_code == 204
    rollout = db.session.execute(select(Rollout)).scalar_one()
    assert started.headers["HX-Redirect"] == f"/rollouts/{rollout.id}" and rollout.skipped == ["pre-on"]
    assert [len(w["instances"]) for w in rollout.waves] == [1, 2]


def test_a_start_without_its_preview_or_after_the_fleet_changed_is_refused(db, client, login, post,
                                                                           tenant_factory):
    tenant_factory(slug="st-a")
    login("operator")
    response = post("/rollouts", data=FORM, token_from="/rollouts")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Not started: preview the rollout first" in page
    assert page.startswith('<div id="rollout-start">') and 'value="v2"' in page
    expect = _EXPECT.search(_preview(post).get_data(as_text=True)).group(1)
    tenant_factory(slug="st-b")  # the fleet changed after the preview
    response = post("/rollouts", data={**FORM, "expect": expect}, token_from="/rollouts")
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "changed since the preview" in page and "preview again" in page
    assert _count(db) == 0 and get_queue().count == 0


def test_progress_partial_reads_the_same_number_of_times_however_many_tenants(db, client, login):
    from ccp.services.instances import delete_instance

    login("viewer")

    def rollout_of(count: int) -> int:
        insts = [make_instance() for _ in range(count)]
        rollout = Rollout(tag="v9", status="running", source="api", actor="bench",
                          waves=[{"instances": [i.id for i in insts[:1]], "status": "succeeded", "errors": {}},
                                 {"instances": [i.id for i in insts[1:]], "status": "running",
                                  "errors": {insts[-1].slug: "agent down"}}], skipped=[])
        db.session.add(rollout)
        db.session.flush()
        for i, inst in enumerate(insts[:-1]):
            done = i % 2 == 0  # the canary (index 0) ended: it may be deleted below
            db.session.add(Upgrade(instance_id=inst.id, kind="release", status="succeeded" if done else "running",
                                   from_tag="v1", to_tag="v9", actor="bench", rollout_id=rollout.id,
                                   started_at=utcnow(), finished_at=utcnow() if done else None))
        db.session.commit()
        delete_instance(insts[0], actor="test")  # a deleted tenant is shown by id, still without a query of its own
        return rollout.id

    def statements(rid: int) -> int:
        db.session.remove()
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            response = client.get(f"/rollouts/{rid}/progress", headers=HX)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert response.status_code == 200
        return len(seen)

    small = rollout_of(3)
    statements(small)  # the first poll also checks the user (the polled path reuses that check)
    few = statements(small)
    db.session.execute(db.update(Rollout).where(Rollout.id == small).values(status="succeeded"))
    db.session.commit()
    large = rollout_of(40)
    body = client.get(f"/rollouts/{large}/progress", headers=HX).get_data(as_text=True)
    assert body.count("so far</td>") >= 19 and "agent down" in body
    assert statements(large) == few, "the progress partial reads more per tenant"


def test_a_receivers_digest_is_shown_on_the_rollout_and_its_upgrades(db, client, login, tenant_factory, run_worker):
    tenant_factory(slug="dig-a")
    digest = "sha256:" + "ab" * 32
    rollout = rollouts.start_rollout("v2", instances=["dig-a"], canary=1, wave_size=1, actor="webhook:hub",
                                     source="webhook", image_digest=digest)
    run_worker()
    login("viewer")
    page = client.get(f"/rollouts/{rollout.id}").get_data(as_text=True)
    assert f'<code title="{digest}">{digest[:19]}…</code>' in page
    upgrade = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalar_one()
    widget = client.get(f"/upgrades/{upgrade.id}").get_data(as_text=True)
    assert f'title="{digest}"' in widget
