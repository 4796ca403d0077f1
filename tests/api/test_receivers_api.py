"""Receivers through the API: the secret is shown once and kept only as verification needs it, bad fields are
refused by name and change nothing, a disabled receiver is off, a rotated secret replaces the old one; the
deliveries log lists decisions and an admin can replay a receiver's delivery."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from ccp.models import AuditEvent, Receiver, WebhookDelivery
from tests.api.conftest import assert_error
from tests.intake import payloads as P
from tests.intake.fake_registry import registry_fixture  # noqa: F401 - provides `fake_registry`

IMAGE = "ghcr.io/acme/app"


def _create(api, token, **fields):
    return api("POST", "/api/receivers", token, json={"name": "gh", "kind": "github", "image": IMAGE, **fields})


def test_the_secret_is_shown_once_and_kept_encrypted(app, db, api, make_token):
    token = make_token("admin")
    resp = _create(api, token)
    assert resp.status_code == 201 and resp.headers["Location"].endswith("/api/receivers/gh")
    created = resp.get_json()
    secret = created["secret"]
    assert len(secret) >= 40 and created["url"] == "http://localhost/api/hooks/gh"
    assert created["repository"] == "acme/app" and created["instances"] == [] and created["has_secret"]
    row = db.session.execute(select(Receiver)).scalar_one()
    assert secret not in json.dumps([getattr(row, c.name) for c in Receiver.__table__.columns], default=str)
    assert row.hmac_key() == secret
    for path in ("/api/receivers", "/api/receivers/gh"):
        assert secret not in api("GET", path, token).get_data(as_text=True)
    audit = db.session.execute(select(AuditEvent).filter_by(action="receiver.create")).scalar_one()
    assert audit.target == "gh" and secret not in json.dumps(audit.detail)


def test_a_url_secret_kind_gets_its_secret_in_the_url_once(app, db, api, make_token):
    token = make_token("admin")
    created = _create(api, token, name="hub", kind="dockerhub", image="acme/app").get_json()
    assert created["url"] == f"http://localhost/api/hooks/hub/{created['secret']}"
    assert api("GET", "/api/receivers/hub", token).get_json()["url"] == "http://localhost/api/hooks/hub/{secret}"
    row = db.session.execute(select(Receiver)).scalar_one()
    assert row.secret_enc is None and len(row.secret_sha256) == 64  # a hash only: verification needs no more
    err = assert_error(_create(api, token, name="hub2", kind="quay", image="quay.io/acme/app", secret="x" * 20),
                       422, "validation_failed")
    assert "CCP makes this secret" in err["details"]["secret"]


def test_a_secret_brought_by_the_admin_is_not_echoed(app, db, api, make_token):
    resp = _create(api, make_token("admin"), secret="typed-into-github-0123456789")
    assert resp.status_code == 201 and resp.get_json()["secret"] is None
    resp = _create(api, make_token("admin"), name="gl", kind="gitlab", secret="whsec_" + "A" * 43 + "=")
    assert resp.status_code == 201
    assert db.session.execute(select(Receiver).filter_by(name="gl")).scalar_one().secret_enc  # a signing key


@pytest.mark.parametrize("fields, field", [
    ({"name": "Bad Name"}, "name"), ({"name": "new"}, "name"), ({"kind": "svn"}, "kind"),
    ({"image": "ghcr.io/acme/app:v1"}, "image"), ({"image": None}, "image"), ({"secret": "short"}, "secret"),
    ({"secret": "whsec_!!notbase64!!notbase64"}, "secret"), ({"semver_range": "one or two"}, "semver_range"),
    ({"tag_include": "(["}, "tag_include"), ({"tag_exclude": "a{99999999999}"}, "tag_exclude"),
    ({"instances": ["nobody"]}, "instances"), ({"instances": ["a", "a"]}, "instances"),
    ({"instances": "all"}, "instances"), ({"min_age_s": -1}, "min_age_s"), ({"min_age_s": True}, "min_age_s"),
    ({"canary": 0}, "canary"), ({"wave_size": 1001}, "wave_size"), ({"enabled": "yes"}, "enabled"),
    ({"registry_username": "robot"}, "registry_password"), ({"registry_password": "pw"}, "registry_username"),
    ({"repository": "has space"}, "repository"), ({"colour": "blue"}, "colour"),
])
def test_bad_fields_are_refused_by_name_and_nothing_is_saved(app, db, api, make_token, fields, field):
    err = assert_error(_create(api, make_token("admin"), **fields), 422, "validation_failed")
    assert field in err["details"], err
    assert db.session.execute(select(func.count(Receiver.id))).scalar() == 0


def test_a_taken_name_is_409(app, db, api, make_token):
    token = make_token("admin")
    _create(api, token)
    assert_error(_create(api, token), 409, "name_taken")


def test_change_disable_and_rotate(app, db, api, client, make_token, tenant):
    token = make_token("admin")
    old = _create(api, token, registry_username="robot", registry_password="pull-token-123").get_json()["secret"]
    resp = api("PATCH", "/api/receivers/gh", token, json={"semver_range": "^2", "instances": [tenant.slug],
                                                          "min_age_s": 600})
    body = resp.get_json()
    assert resp.status_code == 200 and (body["semver_range"], body["instances"], body["min_age_s"]) == (
        "^2", [tenant.slug], 600)
    assert body["has_registry_password"] and "pull-token-123" not in resp.get_data(as_text=True)
    err = assert_error(api("PATCH", "/api/receivers/gh", token, json={"kind": "gitlab", "name": "x"}), 422)
    assert set(err["details"]) == {"kind", "name"}
    cleared = api("PATCH", "/api/receivers/gh", token, json={"registry_username": None}).get_json()
    assert cleared["registry_username"] is None and not cleared["has_registry_password"]
    raw = P.body(P.github_release("v2.0.0"))
    assert client.post("/api/hooks/gh", data=raw, headers=P.github_headers(old, raw, "ping")).status_code == 200
    rotated = api("POST", "/api/receivers/gh/rotate-secret", token).get_json()
    assert rotated["secret"] and rotated["secret"] != old
    assert_error(client.post("/api/hooks/gh", data=raw, headers=P.github_headers(old, raw, "ping")), 401)
    assert client.post("/api/hooks/gh", data=raw,
                       headers=P.github_headers(rotated["secret"], raw, "ping")).status_code == 200
    assert api("PATCH", "/api/receivers/gh", token, json={"enabled": False}).get_json()["enabled"] is False
    assert_error(client.post("/api/hooks/gh", data=raw, headers=P.github_headers(rotated["secret"], raw, "ping")),
                 404)
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.target == "gh")).scalars().all()
    assert actions == ["receiver.create", "receiver.update", "receiver.update", "receiver.secret.rotate",
                       "receiver.disable"]


def test_deliveries_are_listed_filtered_and_replayed(app, db, api, client, make_token, tenant_factory,
                                                      fake_registry):
    app.config["CCP"].receiver_window_s = 0
    tenant_factory(slug="rep-a")
    registry = fake_registry()
    registry.push("acme/app", "v2.0.0")
    admin = make_token("admin")
    secret = _create(api, admin, image=registry.image("acme/app")).get_json()["secret"]
    raw = P.body(P.github_release("v3.0.0"))  # not at the registry yet
    client.post("/api/hooks/gh", data=raw, headers=P.github_headers(secret, raw, "release"))
    ping = P.body({"zen": "hi"})
    client.post("/api/hooks/gh", data=ping, headers=P.github_headers(secret, ping, "ping"))
    from ccp.services.intake import decide_pending

    decide_pending(1, wait=False)
    reader = make_token("read")
    listed = api("GET", "/api/deliveries", reader).get_json()
    assert [d["decision"] for d in listed["items"]] == ["ignored", "ignored"] and listed["total"] == 2
    first = listed["items"][1]
    assert first["reason"].startswith("not resolvable: tag v3.0.0") and first["receiver"] == "gh"
    assert api("GET", "/api/deliveries?decision=started", reader).get_json()["total"] == 0
    assert api("GET", "/api/deliveries?receiver=gh&per_page=1", reader).get_json()["total"] == 2
    assert_error(api("GET", "/api/deliveries?decision=maybe", reader), 400, "invalid_parameter")
    assert_error(api("GET", "/api/deliveries?receiver=nobody", reader), 404)
    assert_error(api("POST", f"/api/deliveries/{first['id']}/replay", reader), 403)
    registry.push("acme/app", "v3.0.0")  # now it is there: the replay starts the rollout
    replayed = api("POST", f"/api/deliveries/{first['id']}/replay", admin)
    body = replayed.get_json()
    assert replayed.status_code == 200 and body["replay_of"] == first["id"] and body["decision"] == "started"
    assert body["rollout_id"] and body["id"] != first["id"]
    assert_error(api("POST", f"/api/deliveries/{listed['items'][0]['id']}/replay", admin), 409, "not_replayable")
    assert_error(api("POST", "/api/deliveries/999/replay", admin), 404)


def test_a_ci_delivery_is_in_the_log_and_cannot_be_replayed(app, db, api, make_token, tenant_factory):
    from tests.webhook_signing import signed_headers

    app.config["CCP"].webhook_secret = "ci-webhook-secret-for-tests-0123456789"
    tenant_factory(slug="ci-a")
    raw = json.dumps({"tag": "v2"}).encode()
    api("POST", "/api/webhooks/ci", data=raw, headers=signed_headers(app.config["CCP"].webhook_secret, raw, "ci-1"))
    (item,) = api("GET", "/api/deliveries", make_token("read")).get_json()["items"]
    assert (item["source"], item["decision"], item["tag"], item["receiver"]) == ("ci", "started", "v2", None)
    assert_error(api("POST", f"/api/deliveries/{item['id']}/replay", make_token("admin")), 409, "not_replayable")
    assert db.session.execute(select(func.count(WebhookDelivery.id))).scalar() == 1
