"""Instance pages: tabs as page or fragment, History, add/edit forms with messages next to fields, roles, CSRF."""

from __future__ import annotations

from sqlalchemy import func, select

from ccp.models import AuditEvent, Instance, Upgrade
from tests.factories import make_instance
from tests.web.conftest import HX


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


def test_history_lists_outcome_tags_actor_duration(client, login, db):
    login("viewer")
    inst = make_instance()
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    db.session.add(Upgrade(instance_id=inst.id, kind="release", status="rolled_back", from_tag="v1", to_tag="v2",
                           actor="alice", error="verify: web exited", started_at=t0,
                           finished_at=t0 + timedelta(seconds=75)))
    db.session.commit()
    body = client.get(f"/instances/{inst.slug}/history", headers=HX).get_data(as_text=True)
    assert "Rolled back" in body and "v1" in body and "v2" in body and "alice" in body and "1 min 15 s" in body


def test_updates_tab_shows_three_actions_with_when_to_use_for_operators(client, login):
    login("operator")
    inst = make_instance()
    body = client.get(f"/instances/{inst.slug}/updates", headers=HX).get_data(as_text=True)
    for label in ("Quick Upgrade", "Upgrade Now", "Upgrade to Release"):
        assert label in body
    assert body.count('class="when"') == 3
    assert "<button" in body and "hx-post" in body


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
