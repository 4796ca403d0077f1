"""Release history and rollbacks through the API: history, a tenant's rollback (preview, apply bound to the plan),
a rollout's rollback (preview, start), and bad input refused with nothing started."""

from __future__ import annotations

from sqlalchemy import func, select

from ccp.models import AuditEvent, Rollout, Upgrade
from tests.api.conftest import assert_error


def _release(api, token, run_worker, db, slug, tag) -> dict:
    plan = api("POST", f"/api/instances/{slug}/upgrade-release/preview", token, json={"imageTag": tag})
    started = api("POST", f"/api/instances/{slug}/upgrade-release", token,
                  json={"imageTag": tag, "plan": plan.get_json()["plan_hash"]})
    assert started.status_code == 202, started.get_json()
    run_worker()
    db.session.expire_all()
    return api("GET", started.headers["Location"], token).get_json()


def _counts(db) -> tuple[int, int, int]:
    return (db.session.scalar(select(func.count(Upgrade.id))), db.session.scalar(select(func.count(Rollout.id))),
            db.session.scalar(select(func.count(AuditEvent.id))))


def test_history_then_roll_back_to_an_earlier_release(app, db, api, make_token, tenant, run_worker):
    op, reader = make_token("operate"), make_token("read")
    v1 = _release(api, op, run_worker, db, tenant.slug, "v1")
    v2 = _release(api, op, run_worker, db, tenant.slug, "v2")
    body = api("GET", f"/api/instances/{tenant.slug}/releases", reader).get_json()
    assert [(r["upgrade_id"], r["tag"], r["current"]) for r in body["items"]] == [(v2["id"], "v2", True),
                                                                                  (v1["id"], "v1", False)]
    first = body["items"][1]
    assert first["recorded"] and first["set"] == {"name": "default", "version": "1.0.0"}
    assert first["file_hashes"] and ".env" not in first["file_hashes"] and first["actor"].startswith("token:")

    preview = api("GET", f"/api/instances/{tenant.slug}/releases/{v1['id']}/rollback/preview", op)
    assert preview.status_code == 200, preview.get_json()
    pv = preview.get_json()
    assert pv["rollback_of"]["upgrade_id"] == v1["id"] and pv["identical"] is True and pv["drift"] == []
    assert pv["preview"]["tag"] == "v1" and pv["preview"]["from_tag"] == "v2"

    started = api("POST", f"/api/instances/{tenant.id}/releases/{v1['id']}/rollback", op,
                  json={"plan": pv["preview"]["plan_hash"]})
    assert started.status_code == 202, started.get_json()
    assert started.get_json()["rollback_of"] == v1["id"] and started.get_json()["to_tag"] == "v1"
    run_worker()
    db.session.expire_all()
    done = api("GET", started.headers["Location"], reader).get_json()
    assert done["status"] == "succeeded" and done["rollback_of"] == v1["id"]
    now = api("GET", f"/api/instances/{tenant.slug}/releases", reader).get_json()["items"][0]
    assert (now["upgrade_id"], now["tag"], now["rollback_of"], now["current"]) == (done["id"], "v1", v1["id"], True)
    assert AuditEvent.query.filter_by(action="upgrade.rollback").count() == 1


def test_bad_rollback_requests_are_refused_and_start_nothing(app, db, api, make_token, tenant_factory, run_worker):
    op = make_token("operate")
    tenant, other = tenant_factory(), tenant_factory()
    v1 = _release(api, op, run_worker, db, tenant.slug, "v1")
    v2 = _release(api, op, run_worker, db, tenant.slug, "v2")
    theirs = _release(api, op, run_worker, db, other.slug, "v2")
    base = f"/api/instances/{tenant.slug}/releases"
    before = _counts(db)
    cases = [
        ("GET", f"{base}/999999/rollback/preview", None, 404, "not_found"),
        ("GET", f"{base}/{theirs['id']}/rollback/preview", None, 404, "not_found"),
        ("GET", f"{base}/{v2['id']}/rollback/preview", None, 409, "already_current"),
        ("POST", f"{base}/{v2['id']}/rollback", {"plan": "0" * 64}, 409, "already_current"),
        ("POST", f"{base}/{v1['id']}/rollback", {}, 422, "validation_failed"),  # no plan: preview first
        ("POST", f"{base}/{v1['id']}/rollback", {"plan": 5}, 422, "validation_failed"),
        ("POST", f"{base}/{v1['id']}/rollback", {"plan": "xyz"}, 422, "validation_failed"),
        ("POST", f"{base}/{v1['id']}/rollback", {"plan": "0" * 64, "tag": "v9"}, 422, "validation_failed"),
        ("POST", f"{base}/{v1['id']}/rollback", {"plan": "0" * 64, "heldOk": "yes"}, 422, "validation_failed"),
        ("POST", f"{base}/{v1['id']}/rollback", {"plan": "0" * 64}, 409, "plan_stale"),
        ("GET", "/api/instances/nobody/releases", None, 404, None),
    ]
    for method, path, body, status, code in cases:
        assert_error(api(method, path, op, **({"json": body} if body is not None else {})), status, code)
    after = _counts(db)
    assert after[:2] == before[:2]


def test_roll_a_rollout_back(app, db, api, make_token, tenant_factory, run_worker):
    op = make_token("operate")
    tenant_factory(slug="api-a"), tenant_factory(slug="api-b")
    started = api("POST", "/api/rollouts", op, json={"tag": "v2", "instances": ["api-a", "api-b"], "canary": 1})
    run_worker()
    rid = started.get_json()["id"]
    preview = api("POST", f"/api/rollouts/{rid}/rollback/preview", op, json={"canary": 1, "waveSize": 5})
    assert preview.status_code == 200, preview.get_json()
    pv = preview.get_json()
    assert [[(t["instance"], t["from_tag"], t["to_tag"]) for t in w["tenants"]] for w in pv["waves"]] == [
        [("api-a", "v2", "v1")], [("api-b", "v2", "v1")]]
    assert pv["skipped"] == [] and pv["running_rollout_id"] is None and len(pv["digest"]) == 64

    assert_error(api("POST", f"/api/rollouts/{rid}/rollback", op, json={"expect": "0" * 64}), 409, "preview_stale")
    assert_error(api("POST", f"/api/rollouts/{rid}/rollback", op, json={"canary": 0}), 422, "validation_failed")
    assert_error(api("POST", f"/api/rollouts/{rid}/rollback", op, json={"tag": "v1"}), 422, "validation_failed")
    assert_error(api("POST", "/api/rollouts/999999/rollback", op, json={}), 404, "not_found")
    assert Rollout.query.count() == 1

    back = api("POST", f"/api/rollouts/{rid}/rollback", op, json={"expect": pv["digest"]})
    assert back.status_code == 202, back.get_json()
    assert back.headers["Location"].endswith(f"/api/rollouts/{back.get_json()['id']}")
    run_worker()
    db.session.expire_all()
    body = api("GET", back.headers["Location"], op).get_json()
    assert body["status"] == "succeeded", body
    assert (body["kind"], body["rollback_of"]) == ("rollback", rid)
    assert [(t["instance"], t["to_tag"], t["status"]) for w in body["waves"] for t in w["tenants"]] == [
        ("api-a", "v1", "succeeded"), ("api-b", "v1", "succeeded")]
    # a rollback is not rolled back; a running rollout cannot be rolled back yet
    assert_error(api("POST", f"/api/rollouts/{body['id']}/rollback/preview", op), 409, "rollback_not_possible")


def test_a_held_tenant_is_rolled_back_only_when_confirmed_and_audited_so(app, db, api, make_token, tenant,
                                                                          run_worker):
    from ccp.services import windows

    op = make_token("operate")
    v1 = _release(api, op, run_worker, db, tenant.slug, "v1")
    _release(api, op, run_worker, db, tenant.slug, "v2")
    windows.set_hold(tenant, "freeze", actor="user:ann")
    plan = api("GET", f"/api/instances/{tenant.slug}/releases/{v1['id']}/rollback/preview", op).get_json()
    url = f"/api/instances/{tenant.slug}/releases/{v1['id']}/rollback"
    count = Upgrade.query.count()
    assert_error(api("POST", url, op, json={"plan": plan["preview"]["plan_hash"]}), 409, "held")
    assert Upgrade.query.count() == count
    started = api("POST", url, op, json={"plan": plan["preview"]["plan_hash"], "heldOk": True})
    assert started.status_code == 202, started.get_json()
    event = AuditEvent.query.filter_by(action="upgrade.start.release", result="ok").order_by(AuditEvent.id.desc())
    assert event.first().detail.get("held") is True
