"""/api/instances: list (paginated), get by id or slug, create, update, delete; never keys or secret values."""

from __future__ import annotations

import sqlalchemy as sa

from ccp.models import AuditEvent, Instance
from tests.api.conftest import assert_error
from tests.factories import make_instance

NEW = {"slug": "acme", "name": "Acme", "domain": "acme.example.test", "driver": "remote", "agent_url": "http://127.0.0.1:9", "agent_key_id": "ccp",
       "agent_key": "AGENT-KEY-never-shown-123", "secrets": {"POSTGRES_PASSWORD": "pw-never-shown-456"},
       "image_tag": "v1"}


def test_list_is_paginated_with_total(app, api, make_token):
    for _ in range(5):
        make_instance()
    token = make_token("read")
    first = api("GET", "/api/instances?per_page=2", token).get_json()
    assert first["total"] == 5 and first["page"] == 1 and len(first["items"]) == 2
    last = api("GET", "/api/instances?per_page=2&page=3", token).get_json()
    assert len(last["items"]) == 1
    slugs = [i["slug"] for p in (1, 2, 3) for i in api("GET", f"/api/instances?per_page=2&page={p}", token).get_json()["items"]]
    assert slugs == sorted(slugs) and len(set(slugs)) == 5


def test_bad_paging_is_400(app, api, make_token):
    token = make_token("read")
    for query in ("page=0", "per_page=1000", "page=abc"):
        assert_error(api("GET", f"/api/instances?{query}", token), 400, "invalid_parameter")


def test_get_by_id_and_slug_never_shows_keys_or_secret_values(app, api, make_token):
    token = make_token("admin")
    created = api("POST", "/api/instances", token, json=NEW)
    assert created.status_code == 201, created.get_json()
    inst_id = created.get_json()["id"]
    assert created.headers["Location"].endswith(f"/api/instances/{inst_id}")
    for ref in (str(inst_id), "acme"):
        resp = api("GET", f"/api/instances/{ref}", token)
        body = resp.get_json()
        assert body["slug"] == "acme" and body["has_agent_key"] is True
        assert body["secret_names"] == ["POSTGRES_PASSWORD"]
        text = resp.get_data(as_text=True)
        assert "AGENT-KEY-never-shown" not in text and "pw-never-shown" not in text
        assert "agent_key_enc" not in text and "secrets_enc" not in text
    assert "never-shown" not in created.get_data(as_text=True)


def test_create_invalid_is_422_with_field_details_and_saves_nothing(app, db, api, make_token):
    token = make_token("admin")
    resp = api("POST", "/api/instances", token, json={"slug": "Bad Slug!", "driver": "remote"})
    err = assert_error(resp, 422, "validation_failed")
    assert {"slug", "agent_url", "agent_key_id", "agent_key"} <= set(err["details"])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == 0


def test_wrong_types_and_unknown_fields_are_422(app, db, api, make_token):
    token = make_token("admin")
    err = assert_error(api("POST", "/api/instances", token, json={**NEW, "is_registered": "yes", "vars": []}), 422)
    assert set(err["details"]) == {"is_registered", "vars"}
    err = assert_error(api("POST", "/api/instances", token, json={**NEW, "agent_key_enc": "x"}), 422)
    assert err["details"] == {"agent_key_enc": "unknown field"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == 0


def test_patch_updates_and_audits_with_token_actor(app, db, api, make_token):
    inst = make_instance()
    token = make_token("admin")
    resp = api("PATCH", f"/api/instances/{inst.slug}", token, json={"name": "Renamed", "image_tag": "v9"})
    assert resp.status_code == 200 and resp.get_json()["name"] == "Renamed"
    db.session.expire_all()
    assert db.session.get(Instance, inst.id).image_tag == "v9"
    event = db.session.scalars(sa.select(AuditEvent).filter_by(action="instance.update")).one()
    assert event.actor.startswith("token:admin-active#") and event.instance_id == inst.id


def test_patch_invalid_changes_nothing(app, db, api, make_token):
    inst = make_instance(name="Original")
    token = make_token("admin")
    err = assert_error(api("PATCH", f"/api/instances/{inst.id}", token,
                           json={"name": "New", "image_tag": "-bad"}), 422, "validation_failed")
    assert "image_tag" in err["details"]
    err = assert_error(api("PATCH", f"/api/instances/{inst.id}", token, json={"slug": "other"}), 422)
    assert err["details"] == {"slug": "unknown field"}
    db.session.expire_all()
    assert db.session.get(Instance, inst.id).name == "Original"


def test_delete_then_404(app, db, api, make_token):
    inst = make_instance()
    token = make_token("admin")
    assert api("DELETE", f"/api/instances/{inst.slug}", token).status_code == 204
    assert_error(api("GET", f"/api/instances/{inst.slug}", token), 404, "not_found")
    assert_error(api("DELETE", f"/api/instances/{inst.slug}", token), 404, "not_found")


def test_delete_refused_while_an_upgrade_is_active(app, db, api, make_token):
    from ccp.models import Upgrade

    inst = make_instance()
    db.session.add(Upgrade(instance_id=inst.id, kind="quick", status="running"))
    db.session.commit()
    token = make_token("admin")
    assert_error(api("DELETE", f"/api/instances/{inst.id}", token), 409, "upgrade_active")
    assert db.session.get(Instance, inst.id) is not None


def test_settings_refused_while_an_upgrade_is_active_but_a_new_name_is_not(app, db, api, make_token):
    from ccp.models import Upgrade

    inst = make_instance()
    up = Upgrade(instance_id=inst.id, kind="release", status="queued")
    db.session.add(up)
    db.session.commit()
    token = make_token("admin")
    before = (inst.image_tag, inst.domain)
    refused = api("PATCH", f"/api/instances/{inst.slug}", token, json={"image_tag": "v9", "name": "Renamed"})
    assert_error(refused, 409, "upgrade_active")
    assert refused.get_json()["error"]["details"]["upgrade_id"] == up.id
    db.session.expire_all()
    assert (inst.image_tag, inst.domain, inst.name) == (*before, inst.name) and inst.name != "Renamed"
    assert api("PATCH", f"/api/instances/{inst.slug}", token, json={"name": "Renamed"}).status_code == 200
    up.status = "succeeded"
    db.session.commit()
    assert api("PATCH", f"/api/instances/{inst.slug}", token, json={"image_tag": "v9"}).status_code == 200
