"""The signed CI webhook (Standard Webhooks): deliveries start rollouts once, replays and forgeries leave no trace,
every verified delivery is kept with its outcome, and the signing examples in docs/api.md really sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ccp.models import Rollout, WebhookDelivery
from tests.api.conftest import assert_error
from tests.webhook_signing import signature, signed_headers

SECRET = "ci-webhook-secret-for-tests-0123456789"
WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = json.dumps({"tag": "v2", "canary": 1, "waveSize": 1}).encode()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _count(db, model) -> int:
    return db.session.execute(select(func.count(model.id))).scalar()


def _post(api, body: bytes, headers: dict):
    return api("POST", "/api/webhooks/ci", data=body, headers=headers)


def _send(api, body: bytes = BODY, delivery: str = "run-1", secret: str = SECRET, **kwargs):
    return _post(api, body, signed_headers(secret, body, delivery, **kwargs))


@pytest.fixture
def hook(app, tenant_factory):
    """The webhook on (plain secret) and two tenants to roll out to."""
    app.config["CCP"].webhook_secret = SECRET
    tenant_factory(slug="hook-a"), tenant_factory(slug="hook-b")


def test_a_signed_delivery_starts_a_rollout_once(app, db, api, make_token, hook, run_worker):
    accepted = _send(api, delivery="pipeline-42")
    assert accepted.status_code == 202, accepted.get_json()
    rollout = accepted.get_json()
    assert rollout["source"] == "webhook" and rollout["actor"] == "webhook:ci"
    assert accepted.headers["Location"].endswith(f"/api/rollouts/{rollout['id']}")
    delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert (delivery.delivery_id, delivery.status, delivery.rollout_id, delivery.signature_ok) == (
        "pipeline-42", "accepted", rollout["id"], True)
    again = _send(api, delivery="pipeline-42")  # freshly signed, same id: a duplicate, not a second rollout
    assert assert_error(again, 409, "duplicate_delivery")["details"] == {"rollout_id": rollout["id"]}
    run_worker()
    db.session.expire_all()
    assert api("GET", f"/api/rollouts/{rollout['id']}", make_token("read")).get_json()["status"] == "succeeded"
    assert _count(db, Rollout) == 1 and _count(db, WebhookDelivery) == 1


def test_a_captured_delivery_cannot_be_replayed_under_a_new_id(db, api, hook):
    captured = signed_headers(SECRET, BODY, "pipeline-1")
    replay = {**captured, "webhook-id": "pipeline-2"}
    assert "webhook-id" in assert_error(_post(api, BODY, replay), 401, "bad_signature")["message"]
    later = {**captured, "webhook-timestamp": str(int(captured["webhook-timestamp"]) + 1)}  # re-dated: no match
    assert_error(_post(api, BODY, later), 401, "bad_signature")
    assert _count(db, Rollout) == 0 and _count(db, WebhookDelivery) == 0


@pytest.mark.parametrize("offset", [-360, 360], ids=["6-min-old", "6-min-ahead"])
def test_a_delivery_outside_the_time_window_is_refused_without_a_trace(db, api, hook, offset):
    err = assert_error(_send(api, timestamp=int(time.time()) + offset), 401, "stale_delivery")
    assert err["details"] == {"tolerance_seconds": 300} and ("behind" if offset < 0 else "ahead") in err["message"]
    assert _count(db, Rollout) == 0 and _count(db, WebhookDelivery) == 0


def test_a_delivery_inside_the_time_window_is_accepted(db, api, hook):
    assert _send(api, timestamp=int(time.time()) - 240).status_code == 202


def test_unsigned_forged_and_malformed_signatures_leave_no_trace(db, api, hook, caplog, monkeypatch):
    # The session's in-process migration (alembic's fileConfig) disables loggers that already exist; undo that here.
    monkeypatch.setattr(logging.getLogger("ccp.api.webhooks"), "disabled", False)
    good = signed_headers(SECRET, BODY, "run-9")
    cases = [
        ({k: v for k, v in good.items() if k != "webhook-signature"}, "bad_signature"),
        ({k: v for k, v in good.items() if k != "webhook-timestamp"}, "bad_signature"),
        ({"Content-Type": "application/json"}, "bad_signature"),
        (signed_headers("another-secret-of-enough-length", BODY, "run-9"), "bad_signature"),
        ({**good, "webhook-signature": good["webhook-signature"].upper()}, "bad_signature"),
        ({**good, "webhook-signature": "v1,not-base64"}, "bad_signature"),
        ({**good, "webhook-signature": "v1," + "A" * 43 + "=,extra"}, "bad_signature"),
        ({**good, "webhook-signature": "v2" + good["webhook-signature"][2:]}, "bad_signature"),
        ({**good, "webhook-signature": "sha256=" + "0" * 64}, "bad_signature"),
        ({**good, "webhook-timestamp": "1e9"}, "bad_signature"),
        ({**good, "webhook-timestamp": "0" + good["webhook-timestamp"]}, "bad_signature"),
    ]
    for headers, code in cases:
        assert_error(_post(api, BODY, headers), 401, code)
    assert_error(_post(api, json.dumps({"tag": "v3"}).encode(), good), 401, "bad_signature")  # another body
    assert_error(_send(api, delivery="has spaces"), 400, "invalid_delivery")
    assert_error(_send(api, delivery="x" * 101), 400, "invalid_delivery")
    assert_error(_send(api, body=b'{"tag": "\xff"}'), 400, "invalid_json")  # not UTF-8: unverifiable
    assert _count(db, Rollout) == 0 and _count(db, WebhookDelivery) == 0
    assert "CI webhook refused" in caplog.text and SECRET not in caplog.text
    assert good["webhook-signature"][3:] not in caplog.text


def test_the_old_x_ccp_headers_are_refused_with_the_headers_to_send(db, api, hook):
    old = {"Content-Type": "application/json", "X-CCP-Delivery": "run-1",
           "X-CCP-Signature": "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()}
    err = assert_error(_post(api, BODY, old), 401, "bad_signature")
    for words in ("X-CCP-Signature", "no longer accepted", "webhook-id", "webhook-timestamp", "webhook-signature"):
        assert words in err["message"]
    assert err["details"] == {"required_headers": ["webhook-id", "webhook-timestamp", "webhook-signature"]}
    assert _count(db, WebhookDelivery) == 0


@pytest.mark.parametrize("body, code", [
    (b'{"tag": "v2"', "invalid_json"),
    (b"null", None),  # invalid_json or invalid_body, as POST /api/rollouts answers it
    (b'["v2"]', "invalid_body"),
    (b'"v2"', "invalid_body"),
    (b"", "invalid_body"),
    (b'{"tag": "bad tag"}', "validation_failed"),
    (b'{"tag": "v2", "tga": 1}', "validation_failed"),
])
def test_a_signed_delivery_with_a_bad_body_is_kept_as_rejected(db, api, hook, body, code):
    err = assert_error(_send(api, body=body, delivery="run-7"), 422 if code == "validation_failed" else 400, code)
    delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert (delivery.delivery_id, delivery.status, delivery.rollout_id) == ("run-7", "rejected", None)
    assert delivery.detail == {"code": err["code"], "message": err["message"]}
    assert _count(db, Rollout) == 0


def test_a_signed_delivery_with_another_content_type_is_kept_as_rejected(db, api, hook):
    resp = _send(api, content_type="text/plain")
    assert_error(resp, 415, "unsupported_media_type")
    assert db.session.execute(select(WebhookDelivery.status)).scalar_one() == "rejected"


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_key_rotation_one_matching_signature_of_several_is_enough(db, api, hook, order):
    ts = int(time.time())
    sigs = [signature("the-previous-secret-0123456789", "run-1", ts, BODY), signature(SECRET, "run-1", ts, BODY)]
    headers = {**signed_headers(SECRET, BODY, "run-1", timestamp=ts),
               "webhook-signature": " ".join(sigs if order == "old-first" else sigs[::-1])}
    assert _post(api, BODY, headers).status_code == 202
    assert db.session.execute(select(WebhookDelivery.status)).scalar_one() == "accepted"


def test_a_whsec_secret_is_the_base64_key(app, db, api, hook):
    app.config["CCP"].webhook_secret = WHSEC
    assert_error(_send(api, delivery="as-text", secret="plain-" + WHSEC), 401, "bad_signature")
    assert _send(api, delivery="as-key", secret=WHSEC).status_code == 202
    app.config["CCP"].webhook_secret = WHSEC.rstrip("=")  # unpadded base64 is the same key
    assert_error(_send(api, delivery="as-key", secret=WHSEC), 409, "duplicate_delivery")


@pytest.mark.parametrize("secret", ["whsec_not*base64*at*all", "whsec_" + base64.b64encode(b"short").decode()])
def test_a_broken_whsec_secret_is_a_configuration_error(app, db, api, secret):
    app.config["CCP"].webhook_secret = secret
    assert_error(_send(api), 503, "webhooks_misconfigured")
    assert _count(db, WebhookDelivery) == 0


def test_the_webhook_is_off_without_a_secret(app, db, api):
    app.config["CCP"].webhook_secret = ""
    assert_error(_send(api), 404, "webhooks_disabled")
    assert _count(db, WebhookDelivery) == 0


def test_a_body_over_the_limit_is_refused_before_anything_is_stored(app, db, api, hook):
    app.config["CCP"].max_body_bytes = 64
    big = json.dumps({"tag": "v2", "instances": ["hook-a"] * 20}).encode()
    assert_error(_send(api, body=big), 413, "body_too_large")
    assert _count(db, WebhookDelivery) == 0


# The examples in docs/api.md, run as written (curl and urlopen replaced by the test client).

def _doc_block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    return next(block for block in blocks if "webhook-signature" in block)


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")
@pytest.mark.parametrize("secret", [SECRET, WHSEC])
def test_the_shell_example_in_the_docs_signs_a_delivery(app, db, api, hook, secret):
    app.config["CCP"].webhook_secret = secret
    fake_curl = 'curl() { printf "%s\\0" "$@"; }\n'
    out = subprocess.run(["bash", "-euc", fake_curl + _doc_block("sh")], capture_output=True, check=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "CCP_WEBHOOK_SECRET": secret, "CI_PIPELINE_ID": "1234",
                              "CCP": "http://ccp.test"}).stdout.decode().split("\0")
    headers = dict(out[i + 1].split(": ", 1) for i, arg in enumerate(out) if arg == "-H")
    body = out[out.index("-d") + 1].encode()
    resp = _post(api, body, headers)
    assert resp.status_code == 202, resp.get_json()
    assert db.session.execute(select(WebhookDelivery.delivery_id)).scalar_one() == "ci-1234"


@pytest.mark.parametrize("secret", [SECRET, WHSEC])
def test_the_python_example_in_the_docs_signs_a_delivery(app, db, api, hook, secret, monkeypatch, capsys):
    app.config["CCP"].webhook_secret = secret
    for name, value in {"CCP_WEBHOOK_SECRET": secret, "CI_PIPELINE_ID": "5678", "CCP": "http://ccp.test"}.items():
        monkeypatch.setenv(name, value)
    sent = []

    def fake_urlopen(request, timeout):
        assert request.full_url == "http://ccp.test/api/webhooks/ci" and request.get_method() == "POST" and timeout
        sent.append(_post(api, request.data, dict(request.header_items())))
        return io.BytesIO(sent[-1].get_data())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    exec(compile(_doc_block("python"), "docs/api.md", "exec"), {})
    assert sent[0].status_code == 202, sent[0].get_json()
    assert json.loads(capsys.readouterr().out)["source"] == "webhook"
