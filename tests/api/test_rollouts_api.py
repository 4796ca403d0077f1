"""Rollouts through the API, with a real worker on real install dirs (dry-run runtime); the CI webhook that also
starts rollouts is tested in tests/api/test_webhooks.py."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ccp.models import Rollout
from tests.api.conftest import assert_error
from tests.api.test_upgrades_api import scrape


def _count(db, model) -> int:
    return db.session.execute(select(func.count(model.id))).scalar()


def test_start_follow_and_finish_a_rollout(app, db, api, make_token, tenant_factory, run_worker):
    tenant_factory(slug="api-a"), tenant_factory(slug="api-b"), tenant_factory(slug="api-c")
    op, viewer = make_token("operate"), make_token("read")
    succeeded = ("ccp_rollouts", frozenset({("status", "succeeded")}))
    assert scrape(api, viewer)[succeeded] == 0
    assert_error(api("POST", "/api/rollouts", viewer, json={"tag": "v2"}), 403, "insufficient_scope")
    started = api("POST", "/api/rollouts", op, json={"tag": "v2", "canary": 1, "waveSize": 2})
    assert started.status_code == 202, started.get_json()
    body = started.get_json()
    assert body["status"] == "running" and body["source"] == "api" and body["actor"].startswith("token:operate")
    assert [[t["instance"] for t in w["tenants"]] for w in body["waves"]] == [["api-a"], ["api-b", "api-c"]]
    assert_error(api("POST", "/api/rollouts", op, json={"tag": "v3"}), 409, "rollout_active")
    run_worker()
    db.session.expire_all()
    done = api("GET", started.headers["Location"], viewer).get_json()
    assert done["status"] == "succeeded" and [w["status"] for w in done["waves"]] == ["succeeded", "succeeded"]
    upgrade_id = done["waves"][1]["tenants"][0]["upgrade_id"]
    assert api("GET", f"/api/upgrades/{upgrade_id}", viewer).get_json()["status"] == "succeeded"
    assert scrape(api, viewer)[succeeded] == 1
    listed = api("GET", "/api/rollouts", viewer).get_json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    assert_error(api("POST", f"/api/rollouts/{body['id']}/cancel", op), 409, "not_cancellable")


@pytest.mark.parametrize("payload, field", [
    ({"tag": "no spaces allowed"}, "tag"), ({}, "tag"), ({"tag": "v2", "canary": 0}, "canary"),
    ({"tag": "v2", "waveSize": "5"}, "waveSize"), ({"tag": "v2", "instances": ["ghost"]}, "instances"),
    ({"tag": "v2", "wave_size": 3}, "wave_size"), ({"tag": "v2", "instances": ["bad-a", "bad-a"]}, "instances"),
])
def test_bad_rollout_requests_change_nothing(app, db, api, make_token, tenant_factory, payload, field):
    tenant_factory(slug="bad-a")
    err = assert_error(api("POST", "/api/rollouts", make_token("operate"), json=payload), 422)
    assert field in err["details"]
    assert _count(db, Rollout) == 0


def test_cancel_through_the_api(app, db, api, make_token, tenant_factory, run_worker):
    tenant_factory(slug="cx-a"), tenant_factory(slug="cx-b")
    op = make_token("operate")
    rid = api("POST", "/api/rollouts", op, json={"tag": "v2", "waveSize": 1}).get_json()["id"]
    cancelled = api("POST", f"/api/rollouts/{rid}/cancel", op)
    assert cancelled.status_code == 200 and cancelled.get_json()["cancel_requested"] is True
    run_worker()
    db.session.expire_all()
    assert api("GET", f"/api/rollouts/{rid}", op).get_json()["status"] == "cancelled"
    assert_error(api("GET", "/api/rollouts/999999", op), 404, "not_found")


def test_rollout_with_every_tenant_skipped_finishes_when_it_is_created(app, db, api, make_token, tenant_factory):
    tenant_factory(slug="on-v2", tag="v2")
    body = api("POST", "/api/rollouts", make_token("operate"), json={"tag": "v2"}).get_json()
    assert body["status"] == "succeeded" and body["skipped"] == ["on-v2"] and body["waves"] == []
    assert body["finished_at"] >= body["created_at"]


def test_a_deleted_tenant_is_named_by_its_id(app, db, api, make_token, tenant_factory, run_worker):
    tenant_factory(slug="gone-a")
    gone = tenant_factory(slug="gone-b")
    op, admin = make_token("operate"), make_token("admin")
    started = api("POST", "/api/rollouts", op, json={"tag": "v2", "waveSize": 1}).get_json()
    assert api("DELETE", f"/api/instances/{gone.id}", admin).status_code == 204
    run_worker()
    db.session.expire_all()
    body = api("GET", f"/api/rollouts/{started['id']}", op).get_json()
    assert body["status"] == "halted"
    assert body["waves"][1]["tenants"] == [{"instance": f"#{gone.id} (deleted)", "upgrade_id": None,
                                            "status": "could_not_start", "error": "the instance was deleted",
                                            "from_tag": None, "to_tag": "v2", "started_at": None,
                                            "finished_at": None, "duration_s": None, "waits_until": None}]


def test_preview_a_rollout_through_the_api(app, db, api, make_token, tenant_factory):
    from tests.factories import make_instance

    tenant_factory(slug="pa-a"), tenant_factory(slug="pa-b")
    make_instance(slug="pa-dead")  # its agent (127.0.0.1:9) is down: a row, not an error
    tenant_factory(slug="pa-on", tag="v2")
    op = make_token("operate")
    assert_error(api("POST", "/api/rollouts/preview", make_token("read"), json={"tag": "v2"}), 403,
                 "insufficient_scope")
    response = api("POST", "/api/rollouts/preview", op, json={"tag": "v2", "canary": 1, "waveSize": 2})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["tag"], body["canary"], body["waveSize"]) == ("v2", 1, 2)
    assert (body["tenants"], body["blocked"], body["halts_at_wave"], body["skipped"]) == (3, 1, 2, ["pa-on"])
    assert [[t["instance"] for t in w["tenants"]] for w in body["waves"]] == [["pa-a"], ["pa-b", "pa-dead"]]
    assert [w["canary"] for w in body["waves"]] == [True, False]
    a, _, dead = (t for w in body["waves"] for t in w["tenants"])
    assert a["state"] == "ready" and (a["from_tag"], a["to_tag"]) == ("v1", "v2") and a["files"]["modified"] >= 1
    assert a["secrets_changed"] == [] and a["missing_env"] == [] and not a["blocked"] and len(a["plan_hash"]) == 64
    assert dead["state"] == "agent_unavailable" and "127.0.0.1:9" in dead["problem"] and dead["blocked"]
    assert _count(db, Rollout) == 0  # a preview starts nothing


@pytest.mark.parametrize("payload, field", [
    ({"tag": "no spaces allowed"}, "tag"), ({}, "tag"), ({"tag": "v2", "canary": 0}, "canary"),
    ({"tag": "v2", "instances": None}, "instances"), ({"tag": "v2", "wave_size": 3}, "wave_size"),
])
def test_bad_preview_requests_are_refused_like_starts(app, db, api, make_token, tenant_factory, payload, field):
    tenant_factory(slug="bad-a")
    err = assert_error(api("POST", "/api/rollouts/preview", make_token("operate"), json=payload), 422)
    assert field in err["details"]


def test_rollout_tenants_say_from_which_tag_and_how_long(app, db, api, make_token, tenant_factory, run_worker):
    tenant_factory(slug="dur-a")
    op = make_token("operate")
    rid = api("POST", "/api/rollouts", op, json={"tag": "v2"}).get_json()["id"]
    run_worker()
    db.session.expire_all()
    (tenant,) = api("GET", f"/api/rollouts/{rid}", op).get_json()["waves"][0]["tenants"]
    assert (tenant["from_tag"], tenant["to_tag"], tenant["status"]) == ("v1", "v2", "succeeded")
    assert tenant["started_at"] <= tenant["finished_at"] and tenant["duration_s"] >= 0


def test_a_start_bound_to_a_preview_refuses_a_changed_fleet(app, db, api, make_token, tenant_factory):
    """The preview's `digest` binds a start (`expect`): a tenant added since is a 409 and nothing is recorded; a
    malformed `expect` is a 422; the preview itself takes no `expect`."""
    tenant_factory(slug="bind-a"), tenant_factory(slug="bind-b")
    op = make_token("operate")
    preview = api("POST", "/api/rollouts/preview", op, json={"tag": "v2"}).get_json()
    assert len(preview["digest"]) == 64
    tenant_factory(slug="bind-c")  # the fleet changed since the preview
    assert_error(api("POST", "/api/rollouts", op, json={"tag": "v2", "expect": preview["digest"]}), 409,
                 "preview_stale")
    assert_error(api("POST", "/api/rollouts", op, json={"tag": "v2", "expect": "nope"}), 422, "validation_failed")
    assert_error(api("POST", "/api/rollouts/preview", op, json={"tag": "v2", "expect": preview["digest"]}), 422,
                 "validation_failed")  # unknown field there
    assert _count(db, Rollout) == 0
    again = api("POST", "/api/rollouts/preview", op, json={"tag": "v2"}).get_json()
    started = api("POST", "/api/rollouts", op, json={"tag": "v2", "expect": again["digest"]})
    assert started.status_code == 202 and _count(db, Rollout) == 1
