"""Rollouts through the API and the signed CI webhook, with a real worker on real install dirs (dry-run runtime)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from sqlalchemy import func, select

from ccp.models import Rollout, WebhookDelivery
from tests.api.conftest import assert_error
from tests.api.test_upgrades_api import scrape

SECRET = "ci-webhook-secret-for-tests-0123456789"


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
    ({"tag": "v2", "wave_size": 3}, "wave_size"),
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


def _signed(api, body: dict | bytes, delivery: str | None = "run-1", secret: str = SECRET, signature=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if delivery is not None:
        headers["X-CCP-Delivery"] = delivery
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if signature:
        headers["X-CCP-Signature"] = signature
    return api("POST", "/api/webhooks/ci", data=raw, headers=headers)


def test_ci_webhook_starts_a_rollout_once_per_delivery(app, db, api, make_token, tenant_factory, run_worker):
    app.config["CCP"].webhook_secret = SECRET
    tenant_factory(slug="hook-a"), tenant_factory(slug="hook-b")
    accepted = _signed(api, {"tag": "v2", "canary": 1, "waveSize": 1}, delivery="pipeline-42")
    assert accepted.status_code == 202, accepted.get_json()
    rollout = accepted.get_json()
    assert rollout["source"] == "webhook" and rollout["actor"] == "webhook:ci"
    delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert (delivery.status, delivery.rollout_id, delivery.signature_ok) == ("accepted", rollout["id"], True)
    replay = _signed(api, {"tag": "v2", "canary": 1, "waveSize": 1}, delivery="pipeline-42")
    assert assert_error(replay, 409, "duplicate_delivery")["details"] == {"rollout_id": rollout["id"]}
    run_worker()
    db.session.expire_all()
    assert api("GET", f"/api/rollouts/{rollout['id']}", make_token("read")).get_json()["status"] == "succeeded"
    assert _count(db, Rollout) == 1


def test_ci_webhook_refuses_unsigned_and_forged_calls_without_a_trace(app, db, api, tenant_factory):
    app.config["CCP"].webhook_secret = SECRET
    tenant_factory(slug="forge-a")
    body = {"tag": "v2"}
    assert_error(_signed(api, body, signature=""), 401, "bad_signature")
    assert_error(_signed(api, body, secret="another-secret-of-enough-length"), 401, "bad_signature")
    raw = json.dumps(body).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert_error(_signed(api, json.dumps({"tag": "v3"}).encode(), signature=good), 401, "bad_signature")  # other body
    assert_error(_signed(api, body, delivery=None), 400, "invalid_delivery")
    assert_error(_signed(api, body, delivery="has spaces"), 400, "invalid_delivery")
    assert _count(db, Rollout) == 0 and _count(db, WebhookDelivery) == 0


def test_ci_webhook_keeps_a_refused_delivery_with_its_reason(app, db, api, tenant_factory):
    app.config["CCP"].webhook_secret = SECRET
    tenant_factory(slug="keep-a")
    assert_error(_signed(api, {"tag": "bad tag"}, delivery="run-7"), 422, "validation_failed")
    delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert delivery.status == "rejected" and delivery.detail["code"] == "validation_failed"
    assert delivery.rollout_id is None and _count(db, Rollout) == 0


def test_ci_webhook_is_off_without_a_secret(app, db, api):
    app.config["CCP"].webhook_secret = ""
    assert_error(_signed(api, {"tag": "v2"}), 404, "webhooks_disabled")
    assert _count(db, WebhookDelivery) == 0
