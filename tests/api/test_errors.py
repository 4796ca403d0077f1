"""Bad input gets the right status in the one error shape and changes nothing; a bad tag never reaches the queue."""

from __future__ import annotations

import pytest

from ccp.extensions import get_queue
from tests.api.auth_matrix_helpers import snapshot
from tests.api.conftest import assert_error


@pytest.fixture
def op(make_token):
    return make_token("admin")


def test_malformed_json_is_400(app, db, api, op, tenant):
    before = snapshot(db)
    for path in ("/api/instances", f"/api/instances/{tenant.slug}/upgrade-release"):
        resp = api("POST", path, op, data=b'{"imageTag": ', content_type="application/json")
        assert_error(resp, 400, "invalid_json")
    resp = api("PATCH", f"/api/instances/{tenant.slug}", op, data=b"\xff\xfe", content_type="application/json")
    assert_error(resp, 400, "invalid_json")
    assert snapshot(db) == before


def test_body_must_be_an_object_and_json(app, db, api, op, tenant):
    assert_error(api("POST", "/api/instances", op, json=[1, 2]), 400, "invalid_body")
    assert_error(api("POST", f"/api/instances/{tenant.slug}/upgrade-release", op, json="v2"), 400, "invalid_body")
    assert_error(api("POST", "/api/instances", op, data="slug=x", content_type="application/x-www-form-urlencoded"),
                 415, "unsupported_media_type")


@pytest.mark.parametrize("body, field", [
    ({"imageTag": 2}, "imageTag"),
    ({"imageTag": "v2", "plan": "short"}, "plan"),
    ({"imageTag": "v2", "plan": 7}, "plan"),
    ({"imageTag": "v2", "tag": "v3"}, "tag"),
])
def test_wrong_types_on_release_are_422(app, db, api, op, tenant, body, field):
    before = snapshot(db)
    err = assert_error(api("POST", f"/api/instances/{tenant.slug}/upgrade-release", op, json=body), 422)
    assert field in err["details"]
    assert snapshot(db) == before


@pytest.mark.parametrize("tag", ["-rm", "../etc", "v 2", "x" * 129, ".hidden", "v2;reboot"])
def test_bad_tag_is_422_before_anything_is_enqueued(app, db, api, op, tenant, tag):
    before = snapshot(db)
    for suffix in ("upgrade-release", "upgrade-release/preview"):
        err = assert_error(api("POST", f"/api/instances/{tenant.slug}/{suffix}", op, json={"imageTag": tag}),
                           422, "invalid_tag")
        assert "imageTag" in err["details"]
    assert get_queue().count == 0
    assert snapshot(db) == before


def test_unknown_instance_and_upgrade_are_404(app, api, op):
    assert_error(api("GET", "/api/instances/no-such-tenant", op), 404, "not_found")
    assert_error(api("POST", "/api/instances/no-such-tenant/upgrade-release", op, json={"imageTag": "v2"}), 404)
    assert_error(api("POST", "/api/instances/424242/quick-upgrade", op), 404, "not_found")
    assert_error(api("GET", "/api/upgrades/999999", op), 404, "not_found")
    assert_error(api("POST", "/api/upgrades/999999/cancel", op), 404, "not_found")
    assert_error(api("GET", "/api/audit?instance=no-such-tenant", op), 404, "not_found")


def test_unknown_route_and_method_use_the_error_shape(app, api, op):
    assert_error(api("GET", "/api/nothing-here", op), 404, "not_found")
    resp = api("PUT", "/api/instances", op, json={})
    assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


def test_oversized_body_is_413_and_changes_nothing(app, db, api, op, tenant):
    before = snapshot(db)
    big = b'{"imageTag": "v2", "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    assert_error(api("POST", f"/api/instances/{tenant.slug}/upgrade-release", op, data=big,
                     content_type="application/json"), 413, "body_too_large")
    assert_error(api("POST", "/api/instances", op, data=big, content_type="application/json"), 413)
    assert get_queue().count == 0
    assert snapshot(db) == before


def test_second_active_upgrade_is_409_and_audited_as_refused(app, db, api, op, tenant):
    from ccp.models import AuditEvent

    assert api("POST", f"/api/instances/{tenant.slug}/quick-upgrade", op).status_code == 202
    err = assert_error(api("POST", f"/api/instances/{tenant.slug}/upgrade-release", op, json={"imageTag": "v2"}),
                       409, "upgrade_active")
    assert err["details"]["active_upgrade_id"]
    assert get_queue().count == 1
    refused = db.session.query(AuditEvent).filter_by(result="refused:upgrade_active").one()
    assert refused.action == "upgrade.start.release" and refused.instance_id == tenant.id


def test_stale_plan_is_409_and_enqueues_nothing(app, db, api, op, tenant):
    from ccp.models import AuditEvent, Upgrade

    err = assert_error(api("POST", f"/api/instances/{tenant.slug}/upgrade-release", op,
                           json={"imageTag": "v2", "plan": "0" * 64}), 409, "plan_stale")
    current = api("POST", f"/api/instances/{tenant.slug}/upgrade-release/preview", op, json={"imageTag": "v2"})
    assert err["details"]["plan"] == current.get_json()["plan_hash"]
    assert db.session.query(Upgrade).count() == 0 and get_queue().count == 0
    assert db.session.query(AuditEvent).filter_by(result="refused:plan_stale").count() == 1


def test_agent_unavailable_is_502_naming_the_agent(app, db, api, op):
    from tests.factories import make_instance

    inst = make_instance(agent_url="http://127.0.0.1:9")
    err = assert_error(api("POST", f"/api/instances/{inst.slug}/upgrade-release/preview", op, json={"imageTag": "v2"}),
                       502, "agent_unavailable")
    assert "127.0.0.1:9" in err["message"]
    assert inst.agent_key() not in err["message"]


def test_cancel_finished_upgrade_is_409(app, db, api, op, tenant):
    from ccp.models import Upgrade

    done = Upgrade(instance_id=tenant.id, kind="quick", status="succeeded", actor="t")
    db.session.add(done)
    db.session.commit()
    assert_error(api("POST", f"/api/upgrades/{done.id}/cancel", op), 409, "not_cancellable")


def test_ids_beyond_the_column_range_are_404_not_500(app, api, op):
    """Found by schemathesis: a huge numeric id overflowed the driver (SQLite) / the int4 column (PostgreSQL)."""
    assert_error(api("GET", "/api/instances/99999999999999999999", op), 404, "not_found")
    assert_error(api("GET", "/api/upgrades/475663465741680181248", op), 404, "not_found")
    assert_error(api("POST", "/api/upgrades/2147483648/cancel", op), 404, "not_found")


def test_unknown_query_parameters_are_400(app, api, op):
    err = assert_error(api("GET", "/api/instances?pge=2", op), 400, "invalid_parameter")
    assert err["details"] == {"pge": "unknown parameter"}
    assert_error(api("GET", "/api/audit?instance_id=3", op), 400, "invalid_parameter")
    assert api("GET", "/api/audit?instance=&actor=&page=1&per_page=5", op).status_code == 200


def test_errors_before_any_route_matches_are_json_on_every_json_surface(app, api, op):
    assert_error(api("GET", "/api", op), 404, "not_found")
    for path in ("/metrics", "/healthz"):
        resp = api("POST", path, op)
        assert_error(resp, 405, "method_not_allowed")
        assert "GET" in resp.headers["Allow"]
    big = b"x" * (1024 * 1024 + 10)
    err = assert_error(api("POST", "/api/nothing-here", op, data=big, content_type="application/json"), 413,
                       "body_too_large")
    assert err["details"] == {"limit": 1024 * 1024}


def test_an_unexpected_error_is_a_500_that_does_not_echo_it(app, api, op, monkeypatch):
    import ccp.api.instances

    def broken(inst):
        raise RuntimeError("a value that must not reach a client")

    monkeypatch.setattr(ccp.api.instances, "instance_to_dict", broken)
    from tests.factories import make_instance

    make_instance()
    err = assert_error(api("GET", "/api/instances", op), 500, "internal_error")
    assert "must not reach" not in err["message"]


def test_instance_refusals_keep_their_messages_and_field_details(app, db, api, op, tenant):
    from ccp.models import Instance

    created = assert_error(api("POST", "/api/instances", op, json={"slug": "Bad Slug"}), 422, "validation_failed")
    assert created["message"] == "the instance is not valid" and "slug" in created["details"]
    changed = assert_error(api("PATCH", f"/api/instances/{tenant.slug}", op, json={"domain": "not a domain!"}), 422,
                           "validation_failed")
    assert changed["message"] == "the change is not valid" and set(changed["details"]) == {"domain"}
    db.session.expire_all()
    assert db.session.get(Instance, tenant.id).domain != "not a domain!"
