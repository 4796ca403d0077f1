"""Instance pages: tabs as page or fragment, the header line, History, the upgrade actions (their confirmation,
disabled while an upgrade is active), add/edit forms with messages next to fields, roles, CSRF; the tag suggestions
of the release dialog and the rollout form."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import event, func, select

from ccp.models import AuditEvent, Instance, Rollout, Upgrade
from ccp.web.presenters import ACTIONS
from tests.factories import make_instance
from tests.web.conftest import HX

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_tabs_render_as_page_and_as_fragment(client, login):
    login("viewer")
    inst = make_instance(name="Alpha")
    page = client.get(f"/instances/{inst.slug}").get_data(as_text=True)
    assert "<html" in page and "Overview" in page and "Updates" in page and "History" in page and "Settings" in page
    fragment = client.get(f"/instances/{inst.slug}/history", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body and 'id="instance-tabs"' in body
    assert "No upgrades yet" in body
    assert client.get("/instances/nope").status_code == 404


def test_history_lists_outcome_cause_tags_actor_rollout_and_times_to_the_second(client, login, db):
    login("viewer")
    inst = make_instance()
    rollout = Rollout(tag="v2", status="halted", actor="webhook:ci", source="webhook")
    db.session.add(rollout)
    db.session.flush()
    db.session.add_all([
        Upgrade(instance_id=inst.id, kind="release", status="rolled_back", from_tag="v1", to_tag="v2",
                actor="webhook:ci", error="verify: web exited", started_at=T0, finished_at=T0 + timedelta(seconds=75),
                rollout_id=rollout.id),
        Upgrade(instance_id=inst.id, kind="quick", status="succeeded", from_tag="v1", to_tag="v1", actor="user:alice",
                started_at=T0 + timedelta(hours=1), finished_at=T0 + timedelta(hours=1, seconds=4.2))])
    db.session.commit()
    body = client.get(f"/instances/{inst.slug}/history", headers=HX).get_data(as_text=True)
    rows = body.split("<tr>")[2:]  # newest first
    assert "Quick Upgrade" in rows[0] and "04:04:05 UTC" in rows[0] and "4.2 s" in rows[0]
    assert "user:alice" in rows[0] and "Cause" not in rows[0] and "rollout #" not in rows[0]
    old = rows[1]
    assert '<time datetime="2026-01-02T03:04:05+00:00">2026-01-02 03:04:05 UTC</time>' in old
    assert "Rolled back" in old and "<strong>Cause:</strong> verify: web exited" in old and "1 min 15 s" in old
    assert "webhook:ci" in old and f'<a href="/rollouts/{rollout.id}">rollout #{rollout.id}</a>' in old
    assert "<code>v1</code> → <code>v2</code>" in old


def test_history_shows_active_upgrades_without_a_duration(client, login, db):
    login("viewer")
    inst = make_instance()
    db.session.add(Upgrade(instance_id=inst.id, kind="release", status="queued", to_tag="v2", actor="user:bob",
                           created_at=T0))
    db.session.commit()
    body = client.get(f"/instances/{inst.slug}/history", headers=HX).get_data(as_text=True)
    assert "2026-01-02 03:04:05 UTC</time> <span class=\"muted\">(queued)</span>" in body
    assert '<td data-label="Duration"><span class="muted">queued</span></td>' in body


def test_updates_tab_shows_three_actions_with_when_to_use_for_operators(client, login):
    login("operator")
    inst = make_instance()
    body = client.get(f"/instances/{inst.slug}/updates", headers=HX).get_data(as_text=True)
    for label in ("Quick Upgrade", "Upgrade Now", "Upgrade to Release"):
        assert label in body
    assert body.count('class="when"') == 3
    assert "<button" in body and "hx-post" in body


def test_quick_upgrade_and_upgrade_now_confirm_there_is_no_automatic_rollback(client, login):
    login("operator")
    inst = make_instance(name="Acme", image_tag="v3")
    body = client.get(f"/instances/{inst.slug}/updates", headers=HX).get_data(as_text=True)
    confirms = re.findall(r'hx-confirm="([^"]*)"', body)
    by_kind = {a.kind: a for a in ACTIONS}
    assert confirms == [f"Quick Upgrade on Acme ({inst.slug}), tag v3?\n\n{by_kind['quick'].no_rollback}",
                        f"Upgrade Now on Acme ({inst.slug}), tag v3?\n\n{by_kind['full'].no_rollback}"]
    for kind in ("quick", "full"):
        assert by_kind[kind].no_rollback.startswith("No automatic rollback")
        assert f'<p class="no-rollback">{by_kind[kind].no_rollback}</p>' in body  # said before the click too
    assert by_kind["release"].no_rollback == ""  # a release restores its snapshot by itself


def _active_upgrade(db, inst, status="running"):
    upgrade = Upgrade(instance_id=inst.id, kind="quick", status=status, actor="user:x", to_tag="v1",
                      started_at=T0 if status == "running" else None)
    db.session.add(upgrade)
    db.session.commit()
    return upgrade


def test_actions_and_settings_wait_while_an_upgrade_is_active(client, login, db):
    """Rendered disabled with the reason while an upgrade is queued or running (static/ccp.js keeps them in step
    with the widget after that); enabled, the reason hidden, once it has ended."""
    login("admin")
    inst = make_instance()
    needs_idle = re.compile(r"<(?:button|a)\b[^>]*data-needs-idle[^>]*>")

    def controls(tab):
        body = client.get(f"/instances/{inst.slug}/{tab}", headers=HX).get_data(as_text=True)
        reason = re.search(r'<p class="alert alert-note idle-reason"[^>]*>', body).group(0)
        return needs_idle.findall(body), reason

    for tab in ("updates", "settings"):
        tags, reason = controls(tab)
        assert tags and not any("disabled" in t for t in tags) and " hidden" in reason
    upgrade = _active_upgrade(db, inst, "queued")
    tags, reason = controls("updates")
    assert len(tags) == 3 and " hidden" not in reason
    assert [("disabled" in t) for t in tags if t.startswith("<button")] == [True, True]
    assert 'aria-disabled="true"' in next(t for t in tags if t.startswith("<a"))
    tags, reason = controls("settings")
    assert tags == [t for t in tags if " disabled" in t] and " hidden" not in reason
    page = client.get(f"/instances/{inst.slug}/updates").get_data(as_text=True)
    assert 'data-active="true"' in page and "An upgrade of this tenant is queued or running" in page
    upgrade.status, upgrade.finished_at = "failed", T0
    db.session.commit()
    tags, reason = controls("updates")
    assert not any("disabled" in t for t in tags) and " hidden" in reason


def test_settings_sent_while_an_upgrade_runs_are_refused_by_the_service(client, login, post, db):
    login("admin")
    inst = make_instance()
    _active_upgrade(db, inst, "running")
    response = post(f"/instances/{inst.slug}/settings",
                    {"name": inst.name, "driver": "local", "install_dir": "/srv/elsewhere",
                     "compose_project": inst.compose_project, "domain": inst.domain},
                    token_from=f"/instances/{inst.slug}/settings")
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "Nothing was saved: upgrade" in body and "is active on" in body
    db.session.refresh(inst)
    assert inst.install_dir != "/srv/elsewhere"


def test_header_shows_tag_agent_last_seen_and_badges(client, login, db):
    login("viewer")
    inst = make_instance(image_tag="v7")
    inst.agent_version, inst.last_seen_at, inst.attention = "1.4.0", T0, "rollback of upgrade #3 failed"
    db.session.commit()
    page = client.get(f"/instances/{inst.slug}").get_data(as_text=True)
    header = page[page.index('<p id="instance-facts"'):page.index("</p>", page.index('<p id="instance-facts"'))]
    assert "Tag <code>v7</code>" in header and "1.4.0" in header
    assert "agent seen <time datetime=\"2026-01-02T03:04:05+00:00\">2026-01-02 03:04:05 UTC</time>" in header
    assert "Needs attention: rollback of upgrade #3 failed" in header and "Agent too old" in header


def test_seen_tags_newest_first_distinct_capped_in_one_query(app, db):
    from ccp.services.fleet import seen_tags

    a, b = make_instance(image_tag="v1"), make_instance(image_tag="v1")
    db.session.add_all([
        Upgrade(instance_id=a.id, kind="release", status="succeeded", to_tag="v2", actor="t",
                created_at=T0, finished_at=T0 + timedelta(days=400)),
        Upgrade(instance_id=a.id, kind="release", status="rolled_back", to_tag="broken", actor="t",
                created_at=T0, finished_at=T0 + timedelta(days=500)),  # never ran anywhere: not suggested
        Upgrade(instance_id=b.id, kind="release", status="succeeded", to_tag="v0.9", actor="t",
                created_at=T0 - timedelta(days=30), finished_at=T0 - timedelta(days=30)),
        Rollout(tag="v3-rc1", status="halted", created_at=T0 + timedelta(days=450)),
        Rollout(tag="v2", status="succeeded", created_at=T0 + timedelta(days=10)),
    ])
    db.session.execute(Instance.__table__.update().values(updated_at=T0 + timedelta(days=300)))
    db.session.commit()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        tags = seen_tags()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert tags == ["v3-rc1", "v2", "v1", "v0.9"] and len(statements) == 1
    assert seen_tags(limit=2) == ["v3-rc1", "v2"]
    for n in range(25):
        db.session.add(Rollout(tag=f"r{n}", status="succeeded", created_at=T0 + timedelta(days=600 + n)))
    db.session.commit()
    assert seen_tags() == [f"r{n}" for n in range(24, 4, -1)]  # 20 at most, newest first


def test_tag_fields_suggest_the_fleets_tags(client, login, db):
    login("operator")
    inst = make_instance(image_tag="v1.2")
    dialog = client.get(f"/instances/{inst.slug}/release", headers=HX).get_data(as_text=True)
    assert re.search(r'<input id="release-tag"[^>]*list="seen-tags"', dialog)
    assert '<datalist id="seen-tags"><option value="v1.2"></option></datalist>' in dialog
    rollouts = client.get("/rollouts").get_data(as_text=True)
    assert re.search(r'<input id="r-tag"[^>]*list="seen-tags"', rollouts)
    assert '<datalist id="seen-tags"><option value="v1.2"></option></datalist>' in rollouts


def test_viewer_sees_no_action_buttons_and_gets_403_when_posting(client, login, post, db):
    login("viewer")
    inst = make_instance()
    for tab in ("", "/updates", "/settings"):
        body = client.get(f"/instances/{inst.slug}{tab}").get_data(as_text=True)
        assert "hx-post" not in body and "Save settings" not in body and "Apply" not in body
    assert "Add instance" not in client.get("/").get_data(as_text=True)
    for path in (f"/instances/{inst.slug}/quick-upgrade", f"/instances/{inst.slug}/upgrade-now",
                 f"/instances/{inst.slug}/release/preview", f"/instances/{inst.slug}/release/apply",
                 f"/instances/{inst.slug}/settings", "/instances/new"):
        assert post(path, {"tag": "v2", "name": "Hacked"}).status_code == 403, path
    assert client.get(f"/instances/{inst.slug}/release").status_code == 403
    db.session.refresh(inst)
    assert inst.name != "Hacked"
    assert db.session.execute(select(func.count(Upgrade.id))).scalar() == 0


def test_post_without_csrf_token_is_403_and_changes_nothing(client, login, db):
    login("admin")
    inst = make_instance()
    response = client.post(f"/instances/{inst.slug}/quick-upgrade", headers=HX)
    assert response.status_code == 403 and "security token" in response.get_data(as_text=True)
    response = client.post(f"/instances/{inst.slug}/settings", data={"name": "X", "csrf_token": "forged"})
    assert response.status_code == 403
    db.session.refresh(inst)
    assert inst.name != "X"
    assert db.session.execute(select(func.count(Upgrade.id))).scalar() == 0


def test_add_instance_shows_errors_next_to_fields_and_saves_nothing(client, login, post, db):
    login("admin")
    response = post("/instances/new", {"slug": "Bad Slug", "name": "", "driver": "remote", "agent_url": "ftp://x",
                                       "health_urls": "not-a-url"}, token_from="/instances/new")
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in body
    assert 'id="e-slug"' in body and 'id="e-agent_url"' in body and 'id="e-health_urls"' in body
    assert 'id="e-name"' in body and "Nothing was saved" in body
    assert 'value="Bad Slug"' in body  # what the operator typed is kept
    assert db.session.execute(select(func.count(Instance.id))).scalar() == 0


def test_add_instance_then_edit_settings(client, login, post, db):
    login("admin")
    response = post("/instances/new", {"slug": "acme", "name": "Acme", "domain": "acme.test", "driver": "local",
                                       "install_dir": "/srv/acme", "health_urls": "https://acme.test/health",
                                       "vars": "SITE_TITLE=Acme Inc"}, token_from="/instances/new")
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/instances/acme"
    inst = db.session.execute(select(Instance).filter_by(slug="acme")).scalar_one()
    assert inst.health_urls == ["https://acme.test/health"] and inst.vars == {"SITE_TITLE": "Acme Inc"}
    body = post("/instances/acme/settings", {"name": "Acme", "driver": "local", "install_dir": "relative/path",
                                             "compose_project": "acme"}).get_data(as_text=True)
    assert 'id="e-install_dir"' in body and "absolute path" in body
    db.session.refresh(inst)
    assert inst.install_dir == "/srv/acme"
    response = post("/instances/acme/settings", {"name": "Acme Two", "driver": "local", "install_dir": "/srv/acme",
                                                 "compose_project": "acme", "domain": "acme.test",
                                                 "monitor_window_s": "30"})
    assert response.status_code == 200 and "Saved." in response.get_data(as_text=True)
    db.session.refresh(inst)
    assert inst.name == "Acme Two" and inst.monitor_window_s == 30
    # UI actions are audited as user:<name>, so a user called "cli" can never pass for the CLI.
    actors = {e.actor for e in db.session.execute(select(AuditEvent)).scalars()}
    assert actors and all(a.startswith("user:") for a in actors), actors
    body = post("/instances/acme/settings", {"name": "Acme Two", "driver": "local", "install_dir": "/srv/acme",
                                             "compose_project": "acme", "domain": "acme.test",
                                             "monitor_window_s": "\u0661\u0662"}).get_data(as_text=True)
    assert 'id="e-monitor_window_s"' in body
    db.session.refresh(inst)
    assert inst.monitor_window_s == 30


def test_agent_key_is_never_rendered(client, login):
    login("admin")
    inst = make_instance(agent_key="very-secret-agent-key-123")
    for tab in ("", "/settings"):
        assert "very-secret-agent-key-123" not in client.get(f"/instances/{inst.slug}{tab}").get_data(as_text=True)
