"""Upgrades through the API end to end: preview, apply with the plan, status with steps, history, audit, /metrics."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import assert_error


def scrape(api, token) -> dict:
    """/metrics parsed into {(name, frozenset(labels)): value}."""
    resp = api("GET", "/metrics", token)
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def test_preview_apply_status_history_audit(app, db, api, make_token, tenant, run_worker):
    op, admin = make_token("operate"), make_token("admin")
    preview = api("POST", f"/api/instances/{tenant.slug}/upgrade-release/preview", op, json={"imageTag": "v2"})
    assert preview.status_code == 200
    body = preview.get_json()
    assert {"key": "IMAGE_TAG", "change": "changed", "secret": False, "old": "v1", "new": "v2"} in body["env"]
    assert {"key": "POSTGRES_PASSWORD", "change": "unchanged", "secret": True, "old": None, "new": None} in body["env"]
    assert body["secrets_changed"] == [] and body["env_other_keys"] == []
    plan = body["plan_hash"]
    assert re.fullmatch(r"[0-9a-f]{64}", plan)

    started = api("POST", f"/api/instances/{tenant.id}/upgrade-release", op, json={"imageTag": "v2", "plan": plan})
    assert started.status_code == 202
    body = started.get_json()
    assert body["status"] == "queued" and body["to_tag"] == "v2" and body["plan_hash"] == plan
    assert body["actor"].startswith("token:operate-active#")
    run_worker()
    db.session.expire_all()  # the worker used its own session; the test's app context keeps its own

    upgrade = api("GET", started.headers["Location"], op).get_json()
    assert upgrade["status"] == "succeeded", upgrade
    assert [s["name"] for s in upgrade["steps"]][:3] == ["render", "check_plan", "pre_upgrade"]
    assert all(s["duration_s"] is not None for s in upgrade["steps"] if s["status"] == "succeeded")
    assert api("GET", f"/api/instances/{tenant.slug}", op).get_json()["image_tag"] == "v2"

    history = api("GET", f"/api/instances/{tenant.slug}/upgrades", op).get_json()
    assert history["total"] == 1 and history["items"][0]["id"] == upgrade["id"]

    audit = api("GET", f"/api/audit?instance={tenant.slug}&actor=token:*", admin).get_json()
    starts = [e for e in audit["items"] if e["action"] == "upgrade.start.release"]
    assert starts and starts[0]["plan_hash"] == plan and starts[0]["instance_id"] == tenant.id
    assert starts[0]["actor"] == body["actor"]
    assert api("GET", "/api/audit?actor=user:nobody", admin).get_json()["total"] == 0


def test_quick_and_full_and_cancel(app, db, api, make_token, tenant, run_worker):
    op = make_token("operate")
    quick = api("POST", f"/api/instances/{tenant.slug}/quick-upgrade", op)
    assert quick.status_code == 202 and quick.get_json()["kind"] == "quick"
    cancelled = api("POST", f"/api/upgrades/{quick.get_json()['id']}/cancel", op)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    full = api("POST", f"/api/instances/{tenant.slug}/upgrade-now", op, json={})
    assert full.status_code == 202 and full.get_json()["kind"] == "full"
    assert_error(api("POST", f"/api/instances/{tenant.slug}/upgrade-now", op, json={"force": True}), 422)
    run_worker()
    db.session.expire_all()  # the worker used its own session; the test's app context keeps its own
    final = api("GET", f"/api/upgrades/{full.get_json()['id']}", op).get_json()
    # The default scripts/upgrade.sh needs real Docker; here it only matters that the job ran and is reported.
    assert final["status"] not in ("queued", "running") and final["steps"][0]["name"] == "script"
    assert final["finished_at"] and final["steps"][0]["status"] in ("succeeded", "failed")


def test_metrics_counters_change_after_an_apply(app, db, api, make_token, tenant, run_worker):
    token = make_token("read")
    op = make_token("operate")
    finished = ("ccp_upgrades_finished_total", frozenset({("kind", "release"), ("status", "succeeded")}))
    queued = ("ccp_upgrades", frozenset({("kind", "release"), ("status", "queued")}))
    before = scrape(api, token)
    assert before[finished] == 0 and before[queued] == 0
    assert before[("ccp_agent_up", frozenset({("instance", tenant.slug)}))] in (0, 1)

    api("POST", f"/api/instances/{tenant.slug}/upgrade-release", op, json={"imageTag": "v2"})
    mid = scrape(api, token)
    assert mid[queued] == 1 and mid[("ccp_queue_jobs", frozenset({("queue", "main"), ("state", "queued")}))] == 1
    run_worker()
    db.session.expire_all()  # the worker used its own session; the test's app context keeps its own
    after = scrape(api, token)
    assert after[finished] == 1 and after[queued] == 0
    assert after[("ccp_queue_jobs", frozenset({("queue", "main"), ("state", "queued")}))] == 0
    write_count = ("ccp_upgrade_step_duration_seconds_count", frozenset({("step", "write")}))
    assert after[write_count] == 1
    assert after[("ccp_upgrade_step_duration_seconds_bucket", frozenset({("step", "write"), ("le", "+Inf")}))] == 1
    # The agent was reached during the apply, so it now counts as up.
    assert after[("ccp_agent_up", frozenset({("instance", tenant.slug)}))] == 1


def test_metrics_needs_a_token(client):
    resp = client.get("/metrics")
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "unauthenticated"
