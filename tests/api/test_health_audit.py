"""/healthz names what failed; the audit log (API and admin page) filters by instance and actor."""

from __future__ import annotations

import re

import redis

from ccp.services.audit import record
from tests.api.conftest import assert_error
from tests.factories import make_instance, make_user


def test_healthz_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json()["checks"] == {"db": "ok", "redis": "ok"}


def test_healthz_503_names_redis(app, client):
    real = app.extensions["ccp_redis"]
    app.extensions["ccp_redis"] = redis.Redis.from_url("redis://:hunter2-pw@127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        resp = client.get("/healthz")
    finally:
        app.extensions["ccp_redis"] = real
    err = assert_error(resp, 503, "unavailable")
    assert err["details"]["failed"] == ["redis"] and "redis" in err["message"]
    assert resp.get_json()["checks"]["db"] == "ok"
    assert "hunter2" not in resp.get_data(as_text=True)


def test_healthz_503_names_the_database(app_env):
    from ccp.app import create_app

    broken = create_app({"environ": {**app_env, "DATABASE_URL": "postgresql://nobody:hunter2@127.0.0.1:1/none"}})
    resp = broken.test_client().get("/healthz")
    err = assert_error(resp, 503, "unavailable")
    assert err["details"]["failed"] == ["db"] and resp.get_json()["checks"]["redis"] == "ok"
    assert "hunter2" not in resp.get_data(as_text=True)


def test_audit_filters_by_instance_and_actor(app, api, make_token):
    a, b = make_instance(), make_instance()
    record("user:alice", "upgrade.start.quick", instance=a)
    record("token:ci#3", "upgrade.start.release", instance=b, plan_hash="ab" * 32)
    record("token:ci#3", "upgrade.cancel", instance=a)
    admin = make_token("admin")

    def actions(query):
        return [e["action"] for e in api("GET", f"/api/audit?{query}", admin).get_json()["items"]]

    assert actions(f"instance={a.slug}") == ["upgrade.cancel", "upgrade.start.quick", "instance.create"]
    assert actions(f"instance={b.id}&actor=token:ci%233") == ["upgrade.start.release"]
    assert actions("actor=token:*") == ["upgrade.cancel", "upgrade.start.release"]
    assert actions("actor=token:%25") == []  # LIKE wildcards in the filter are literal
    event = api("GET", f"/api/audit?instance={b.slug}&actor=token:*", admin).get_json()["items"][0]
    assert event["plan_hash"] == "ab" * 32 and event["instance_id"] == b.id and event["result"] == "ok"
    assert_error(api("GET", "/api/audit", make_token("operate")), 403, "insufficient_scope")


def test_admin_audit_page_filters(app, client):
    a, b = make_instance(), make_instance()
    record("user:alice", "upgrade.start.quick", instance=a)
    record("user:bob", "upgrade.start.full", instance=b)
    admin, password = make_user(role="admin")
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    client.post("/login", data={"csrf_token": csrf, "username": admin.username, "password": password})
    page = client.get(f"/admin/audit?instance={a.slug}").get_data(as_text=True)
    assert "upgrade.start.quick" in page and "upgrade.start.full" not in page
    page = client.get("/admin/audit?actor=user:bob").get_data(as_text=True)
    assert "upgrade.start.full" in page and "upgrade.start.quick" not in page
