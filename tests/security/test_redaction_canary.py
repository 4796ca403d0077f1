"""Redaction canary: a known secret planted in a provisioned tenant's held secrets and in a registered tenant's .env
must never show up in API responses, rendered UI pages, logs, RQ job data in Redis or the database's plaintext.

Flows: preview, a successful apply, a failing apply (the `broken` tag, rolled back), error paths (stale plan,
unreachable agent, a conflict), through the API and the UI.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import sqlalchemy as sa

from ccp.extensions import get_redis
from ccp.models import Instance, Upgrade
from tests.factories import make_instance, make_user
from tests.tenants import CANARY
from tests.webhook_signing import signed_headers

NEEDLE = CANARY.encode()
WEBHOOK_SECRET = "webhook-secret-canary-5f0c2e7d91"  # must never be echoed either


class Recorder:
    """Collects every response body and header the test sees."""

    def __init__(self, client) -> None:
        self.client = client
        self.seen: list[tuple[str, bytes]] = []

    def __call__(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        resp = self.client.open(path, method=method, headers=headers, **kwargs)
        self.seen.append((f"{method} {path}", resp.get_data() + str(resp.headers).encode()))
        return resp


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_canary_never_leaves_the_tenant(app, db, client, make_token, tenant_factory, run_worker, caplog):
    caplog.set_level(logging.DEBUG)
    provisioned = tenant_factory(registered=False, driver="local")
    registered = tenant_factory(registered=True, driver="remote")
    assert CANARY in str(provisioned.decrypted_secrets())  # the canary is really there to leak
    assert CANARY in (Path(registered.install_dir) / ".env").read_text()
    dead = make_instance(agent_url="http://127.0.0.1:9")
    op = make_token("admin")
    call = Recorder(client)

    for inst in (provisioned, registered):
        # Preview, then a successful apply bound to that plan.
        preview = call("POST", f"/api/instances/{inst.slug}/upgrade-release/preview", op, json={"imageTag": "v2"})
        assert preview.status_code == 200, preview.get_data(as_text=True)
        plan = preview.get_json()["plan_hash"]
        ok = call("POST", f"/api/instances/{inst.slug}/upgrade-release", op, json={"imageTag": "v2", "plan": plan})
        assert ok.status_code == 202
        # Error path: a second start while the first is queued.
        assert call("POST", f"/api/instances/{inst.slug}/quick-upgrade", op).status_code == 409
        run_worker()
        # A failing apply: the broken tag's containers exit, the upgrade rolls back.
        bad = call("POST", f"/api/instances/{inst.slug}/upgrade-release", op, json={"imageTag": "broken"})
        assert bad.status_code == 202
        run_worker()
        # Error path: a stale plan.
        stale = call("POST", f"/api/instances/{inst.slug}/upgrade-release", op,
                     json={"imageTag": "v3", "plan": "f" * 64})
        assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "plan_stale"
        db.session.expire_all()
    statuses = [u.status for u in db.session.scalars(sa.select(Upgrade).order_by(Upgrade.id))]
    assert statuses.count("succeeded") == 2 and "rolled_back" in statuses, statuses
    # Positive control: the secret really went through the apply path (rendered into the host's .env).
    assert CANARY in (Path(provisioned.install_dir) / ".env").read_text()
    assert call("POST", f"/api/instances/{dead.slug}/upgrade-release/preview", op,
                json={"imageTag": "v2"}).status_code == 502
    # A password planted in an agent URL (API create and update): refused, never echoed, never stored.
    with_password = f"http://ccp:{CANARY}@127.0.0.1:9"
    refused = call("POST", "/api/instances", op, json={
        "slug": "canary-url", "domain": "canary-url.example.test", "agent_url": with_password,
        "agent_key_id": "ccp", "agent_key": "k" * 32})
    assert refused.status_code == 422 and "agent_url" in refused.get_json()["error"]["details"]
    assert call("PATCH", f"/api/instances/{dead.slug}", op, json={"agent_url": with_password}).status_code == 422

    # A rollout started by the signed CI webhook, over both tenants (canary first).
    app.config["CCP"].webhook_secret = WEBHOOK_SECRET
    body = json.dumps({"tag": "v5", "instances": [provisioned.slug, registered.slug], "canary": 1}).encode()
    hook = call("POST", "/api/webhooks/ci", data=body, headers=signed_headers(WEBHOOK_SECRET, body, "canary-run-1"))
    assert hook.status_code == 202, hook.get_data(as_text=True)
    forged = {**signed_headers(WEBHOOK_SECRET, body, "canary-run-2"), "webhook-signature": "v1," + "A" * 43 + "="}
    assert call("POST", "/api/webhooks/ci", data=body, headers=forged).status_code == 401
    run_worker()
    db.session.expire_all()
    rollout = call("GET", hook.headers["Location"], op).get_json()
    assert rollout["status"] == "succeeded", rollout
    call("GET", "/api/rollouts", op)
    assert call("POST", "/api/rollouts/preview", op, json={"tag": "v6"}).status_code == 200  # the fleet preview

    # Read everything back through the API.
    upgrade_ids = db.session.scalars(sa.select(Upgrade.id)).all()
    for inst in (provisioned, registered, dead):
        call("GET", f"/api/instances/{inst.slug}", op)
        call("GET", f"/api/instances/{inst.slug}/upgrades", op)
    for uid in upgrade_ids:
        call("GET", f"/api/upgrades/{uid}", op)
    call("GET", "/api/instances", op)
    call("GET", "/api/audit?per_page=100", op)
    call("GET", "/metrics", op)

    # ... and through the UI, including a preview rendered as HTML.
    admin, password = make_user(role="admin")
    call("POST", "/login", data={"csrf_token": _csrf(call("GET", "/login").get_data(as_text=True)),
                                 "username": admin.username, "password": password})
    for inst in (provisioned, registered):
        page = call("GET", f"/instances/{inst.slug}")
        assert page.status_code == 200
        for tab in ("updates", "history", "settings"):
            call("GET", f"/instances/{inst.slug}/{tab}")
        call("GET", f"/instances/{inst.slug}/release")
        ui_preview = call("POST", f"/instances/{inst.slug}/release/preview",
                          data={"csrf_token": _csrf(page.get_data(as_text=True)), "tag": "v4"})
        assert ui_preview.status_code == 200, ui_preview.status_code
    rollouts_page = call("GET", "/rollouts").get_data(as_text=True)
    assert call("POST", "/rollouts/preview", data={"csrf_token": _csrf(rollouts_page), "tag": "v6", "canary": "1",
                                                   "waveSize": "5"}).status_code == 200
    # ... and the settings form: a password in the agent URL is refused and not shown back in the form.
    settings = call("GET", f"/instances/{dead.slug}/settings")
    form = {"csrf_token": _csrf(settings.get_data(as_text=True)), "name": dead.name, "domain": dead.domain,
            "driver": "remote", "agent_url": with_password, "agent_key_id": dead.agent_key_id,
            "compose_project": dead.compose_project, "template_set": "default"}
    assert call("POST", f"/instances/{dead.slug}/settings", data=form).status_code == 422
    db.session.expire_all()
    assert all(CANARY not in (i.agent_url or "") for i in db.session.scalars(sa.select(Instance)))
    for uid in upgrade_ids:
        call("GET", f"/upgrades/{uid}")
        call("GET", f"/upgrades/{uid}/status")
    for path in ("/", "/admin/audit", "/admin/tokens"):
        assert call("GET", path).status_code == 200
    _fleet_awareness(call, op, provisioned, run_worker)

    leaks = [where for where, data in call.seen if NEEDLE in data or WEBHOOK_SECRET.encode() in data]
    assert leaks == [], f"canary in responses: {leaks}"

    log_hits = [r.getMessage() for r in caplog.records if CANARY in r.getMessage() or CANARY in (r.exc_text or "")]
    assert log_hits == [], log_hits
    assert CANARY not in caplog.text and WEBHOOK_SECRET not in caplog.text

    assert _redis_hits(app, db) == []
    assert _db_hits(db) == []


def _fleet_awareness(call, op: str, provisioned, run_worker) -> None:
    """Scans, the fleet's findings, the drift diff, channels (a URL holding the canary as its password) and a
    notification delivered to a real HTTP receiver: the canary is in none of them."""
    from tests.scans.conftest import Receiver

    receiver = Receiver()
    try:
        url = receiver.url.replace("json://", f"json://ccp:{CANARY}@")
        created = call("POST", "/api/channels", op, json={"name": "canary", "url": url,
                                                          "events": ["scan.drift", "scan.update_available"]})
        assert created.status_code == 201, created.get_data(as_text=True)
        env = Path(provisioned.install_dir) / ".env"  # someone changed a secret by hand on the host
        env.write_text(env.read_text().replace(CANARY, CANARY + "-by-hand", 1))
        scan = call("POST", "/api/scans", op, json={"kinds": ["agents", "drift", "updates"]})
        assert scan.status_code == 202
        run_worker()
        assert call("GET", scan.headers["Location"], op).get_json()["summary"]["drifted"] >= 1
        assert len(receiver.posts) == 1 and provisioned.slug in receiver.posts[0]["raw"]
        call.seen += [(f"notification {p['path']}", p["raw"].encode()) for p in receiver.posts]
        for path in ("/api/fleet", "/api/fleet?filter=drifted", "/api/channels", "/api/schedules",
                     "/api/audit?per_page=100"):
            assert call("GET", path, op).status_code == 200, path
        for path in ("/?f=drifted", f"/fleet/drift/{provisioned.slug}", "/admin/awareness"):
            assert call("GET", path).status_code == 200, path
    finally:
        receiver.stop()


def _redis_hits(app, db) -> list[str]:
    """Every key of this test's queue and its jobs (hash fields, strings, lists, sets) searched for the canary."""
    redis = get_redis()
    queue = app.config["CCP"].queue_name
    job_ids = [j for j in db.session.scalars(sa.select(Upgrade.job_id)) if j]
    assert job_ids
    keys = {f"rq:job:{j}".encode() for j in job_ids}
    keys |= set(redis.scan_iter(match=f"rq:*{queue}*".encode()))
    hits = []
    job_hashes = [k for k in keys if redis.type(k) == b"hash"]
    assert len(job_hashes) >= len(job_ids), "the job data is gone: nothing was searched"
    for key in keys:
        kind = redis.type(key)
        if kind == b"hash":
            blob = b"".join(k + v for k, v in redis.hgetall(key).items())
        elif kind == b"string":
            blob = redis.get(key) or b""
        elif kind == b"list":
            blob = b"".join(redis.lrange(key, 0, -1))
        elif kind in (b"set", b"zset"):
            blob = b"".join(redis.zrange(key, 0, -1) if kind == b"zset" else redis.smembers(key))
        else:
            continue
        if NEEDLE in blob or _maybe_compressed_hit(blob):
            hits.append(key.decode())
    return hits


def _maybe_compressed_hit(blob: bytes) -> bool:
    """RQ stores job data zlib-compressed: look inside too."""
    import zlib

    for start in range(min(len(blob), 64)):
        try:
            if NEEDLE in zlib.decompress(blob[start:]):
                return True
        except zlib.error:
            continue
    return False


def _db_hits(db) -> list[str]:
    """Every column of every table, as text: only the Fernet ciphertext columns may hold the secret (encrypted)."""
    hits = []
    inspector = sa.inspect(db.engine)
    for table in inspector.get_table_names():
        for row in db.session.execute(sa.text(f'SELECT * FROM "{table}"')).mappings():
            for column, value in row.items():
                if value is not None and (CANARY in str(value) or WEBHOOK_SECRET in str(value)):
                    hits.append(f"{table}.{column}")
    db.session.rollback()
    return hits
