"""Every API route x {no token, bad token, expired, revoked, wrong scope, right scope, session cookie only}.

Denied calls get 401/403 in the error shape and change nothing: the database rows (token last-use times aside) and
the RQ queue are compared before and after.
"""

from __future__ import annotations

import re

import pytest

from ccp.extensions import worker_queues
from ccp.models import Rollout, Upgrade
from tests.api.auth_matrix_helpers import snapshot
from tests.api.conftest import assert_error
from tests.factories import make_user

NEW = {"slug": "matrix-new", "domain": "matrix-new.example.test", "driver": "local", "install_dir": "/srv/matrix-new", "image_tag": "v1"}

# (method, path, body, permission, expected success status)
ROUTES = [
    ("GET", "/api/instances", None, "read", 200),
    ("GET", "/api/instances/{slug}", None, "read", 200),
    ("POST", "/api/instances", NEW, "admin", 201),
    ("PATCH", "/api/instances/{id}", {"name": "Renamed"}, "admin", 200),
    ("DELETE", "/api/instances/{slug}", None, "admin", 204),
    ("POST", "/api/instances/{slug}/upgrade-release/preview", {"imageTag": "v2"}, "operate", 200),
    ("POST", "/api/instances/{slug}/upgrade-release", {"imageTag": "v2"}, "operate", 202),
    ("POST", "/api/instances/{slug}/quick-upgrade", None, "operate", 202),
    ("POST", "/api/instances/{slug}/upgrade-now", None, "operate", 202),
    ("GET", "/api/instances/{id}/upgrades", None, "read", 200),
    ("GET", "/api/upgrades/{done}", None, "read", 200),
    ("POST", "/api/upgrades/{queued}/cancel", None, "operate", 200),
    ("POST", "/api/upgrades/{done}/restore", {"confirm": True}, "operate", 409),  # {done} took no backup
    ("GET", "/api/rollouts", None, "read", 200),
    ("GET", "/api/rollouts/{rollout}", None, "read", 200),
    ("POST", "/api/rollouts/{rollout}/cancel", None, "operate", 200),
    ("GET", "/api/instances/{slug}/releases", None, "read", 200),
    # the right scope reaches the service, which refuses: {done} is a quick upgrade, the rollout is running
    ("GET", "/api/instances/{slug}/releases/{done}/rollback/preview", None, "operate", 422),
    ("POST", "/api/instances/{slug}/releases/{done}/rollback", {"plan": "0" * 64}, "operate", 422),
    ("POST", "/api/rollouts/{rollout}/rollback/preview", None, "operate", 409),
    ("POST", "/api/rollouts/{rollout}/rollback", None, "operate", 409),
    # the fixture's rollout is running, so the right scope reaches the service, which refuses a second one
    ("POST", "/api/rollouts", {"tag": "v2"}, "operate", 409),
    # reads only (agents are asked; the fixture's remote tenant is a row saying its agent is unreachable)
    ("POST", "/api/rollouts/preview", {"tag": "v2"}, "operate", 200),
    ("GET", "/api/audit", None, "admin", 200),
    ("GET", "/api/receivers", None, "admin", 200),
    ("POST", "/api/receivers", {"name": "matrix-new-hook", "kind": "github", "image": "127.0.0.1:9/acme/app"},
     "admin", 201),
    ("GET", "/api/receivers/{receiver}", None, "admin", 200),
    ("PATCH", "/api/receivers/{receiver}", {"semver_range": "^1"}, "admin", 200),
    ("POST", "/api/receivers/{receiver}/rotate-secret", None, "admin", 200),
    ("GET", "/api/deliveries", None, "read", 200),
    ("POST", "/api/deliveries/{delivery}/replay", None, "admin", 200),  # (the registry is unreachable: ignored)
    ("GET", "/api/fleet", None, "read", 200),
    ("POST", "/api/scans", {"kinds": ["agents"]}, "operate", 202),
    ("GET", "/api/scans/{scan}", None, "read", 200),
    ("GET", "/api/schedules", None, "admin", 200),
    ("PATCH", "/api/schedules/drift", {"cron": "*/5 * * * *"}, "admin", 200),
    ("GET", "/api/channels", None, "admin", 200),
    ("POST", "/api/channels", {"name": "matrix-new-channel", "url": "json://127.0.0.1:9/x", "events": ["scan.drift"]},
     "admin", 201),
    ("PATCH", "/api/channels/{channel}", {"enabled": False}, "admin", 200),
    ("POST", "/api/channels/{channel}/test", None, "admin", 202),
    ("DELETE", "/api/channels/{channel}", None, "admin", 204),
    ("GET", "/api/agents", None, "read", 200),
    ("POST", "/api/agent-updates/preview", None, "admin", 200),
    ("POST", "/api/agent-updates", None, "admin", 409),  # the fixture's agent update is running
    ("GET", "/api/agent-updates", None, "read", 200),
    ("GET", "/api/agent-updates/{agent_update}", None, "read", 200),
    ("POST", "/api/agent-updates/{agent_update}/cancel", None, "admin", 200),
    ("GET", "/metrics", None, "read", 200),
]
NARROWER = {"operate": "read", "admin": "operate"}
WIDER = {"read": "operate", "operate": "admin"}
@pytest.fixture
def matrix_target(app, db, tenant):
    """A tenant with one finished and one queued upgrade (the queued one on another instance, so starts work),
    a running rollout, and a receiver with one delivery."""
    from ccp.models import WebhookDelivery
    from ccp.services.receivers import create_receiver
    from tests.factories import make_instance

    other = make_instance()
    done = Upgrade(instance_id=tenant.id, kind="quick", status="succeeded", actor="test")
    queued = Upgrade(instance_id=other.id, kind="quick", status="queued", actor="test")
    rollout = Rollout(tag="v2", status="running", waves=[{"instances": [other.id], "status": "pending", "errors": {}}])
    receiver, _ = create_receiver({"name": "matrix-hook", "kind": "github", "image": "127.0.0.1:9/acme/app"},
                                  actor="test")
    delivery = WebhookDelivery(source="github", event="release.published", receiver_id=receiver.id, status="accepted",
                               decision="ignored", repository="acme/app", tag="v2",
                               detail={"hints": [{"repository": "acme/app", "tag": "v2", "digest": None}]})
    from ccp.models import AgentRollout

    agent_update = AgentRollout(target_version="9.9.9", wheel_sha256="0" * 64, status="running",
                                waves=[["http://127.0.0.1:9"]])
    db.session.add_all([done, queued, rollout, delivery, agent_update])
    db.session.commit()
    from ccp.services.notify import create_channel
    from ccp.services.scan_runs import start_scan

    channel = create_channel("matrix-channel", "json://127.0.0.1:9/hook", ["scan.drift"], actor="test")
    scan = start_scan(["agents"], actor="test")
    for queue in worker_queues():
        queue.empty()
    return {"slug": tenant.slug, "id": tenant.id, "done": done.id, "queued": queued.id, "rollout": rollout.id,
            "receiver": receiver.name, "delivery": delivery.id, "channel": channel.id, "scan": scan.id,
            "agent_update": agent_update.id}


@pytest.mark.parametrize("method, path, body, permission, ok", ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_route_auth_matrix(app, db, api, client, make_token, matrix_target, method, path, body, permission, ok):
    url = path.format(**matrix_target)
    kwargs = {"json": body} if body is not None else {}
    denied = {
        "no token": (None, 401, "unauthenticated"),
        "bad token": ("ccp_" + "x" * 43, 401, "invalid_token"),
        "expired": (make_token(permission, "expired"), 401, "invalid_token"),
        "revoked": (make_token(permission, "revoked"), 401, "invalid_token"),
    }
    if permission in NARROWER:
        denied["wrong scope"] = (make_token(NARROWER[permission]), 403, "insufficient_scope")
    before = snapshot(db)  # tokens made above are part of the baseline
    for case, (token, status, code) in denied.items():
        resp = api(method, url, token, **kwargs)
        err = assert_error(resp, status, code)
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer"), case
        assert err["message"], case
    assert snapshot(db) == before, "a call without a valid token or scope changed something"
    # A logged-in browser session is not an API credential (the API is CSRF-exempt because of this).
    admin, password = make_user(role="admin")
    _login(client, admin.username, password)
    before = snapshot(db)
    assert_error(api(method, url, None, **kwargs), 401, "unauthenticated")
    assert snapshot(db) == before, "a denied call changed something"

    resp = api(method, url, make_token(permission), **kwargs)
    assert resp.status_code == ok, (resp.status_code, resp.get_data(as_text=True)[:400])
    if permission in WIDER:  # a wider scope includes the narrower ones
        repeat = api(method, url, make_token(WIDER[permission]), **kwargs)
        assert repeat.status_code < 500


def _login(client, username, password):
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    assert client.post("/login", data={"csrf_token": csrf, "username": username,
                                       "password": password}).status_code == 302
