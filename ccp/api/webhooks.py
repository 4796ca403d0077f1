"""Inbound webhooks: the receivers' intake (`POST /api/hooks/<receiver>`, see ccp.services.intake and
docs/webhooks.md) and the CI webhook, described below.

The CI webhook: a CI pipeline that published an image POSTs the tag to `/api/webhooks/ci` to start a rollout.

Signed as Standard Webhooks prescribe (https://www.standardwebhooks.com), with the shared secret CCP_WEBHOOK_SECRET
(no API token: CI systems hold one secret per hook); docs/api.md has shell and Python examples that sign:

    webhook-id:        unique id of this delivery (1-100 of A-Z a-z 0-9 . _ : -); a repeated id is refused: 409
    webhook-timestamp: Unix time in whole seconds when it was signed; more than 5 minutes off CCP's clock: 401
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw body>">; several may be sent, separated
                       by spaces (key rotation): one that matches is enough
    body:              {"tag": "v2", "instances": [...optional slugs], "canary": 1, "waveSize": 5}

The HMAC key is CCP_WEBHOOK_SECRET: a `whsec_<base64>` secret (the standard's form) stands for the decoded bytes,
any other secret for its UTF-8 bytes as written. Signing the id and the time with the body is what stops replays:
a captured delivery cannot be sent again under a new id (its signature no longer matches), nor under its own id
(409), nor later (stale). The old X-CCP-Signature signed the body only, so it is refused with a 401 saying which
headers to send.

Unsigned, forged or stale calls get 401 and leave no row behind (only a log line, so nobody can fill the database
without the secret). Every delivery whose signature checks out is kept (webhook_deliveries) with its outcome:
`accepted` with the rollout (decision `started`), or `rejected` with the error code and message, malformed bodies
included. The receivers' rule that a webhook never downgrades holds here too: a tag older than what a targeted
tenant runs is refused (409 `downgrade`, decision `ignored`); a downgrade is started by hand.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import time

from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ccp import rules
from ccp.api.base import bp, json_body
from ccp.api.errors import ApiError
from ccp.api.receivers import delivery_json
from ccp.api.rollouts import _accepted, _start
from ccp.extensions import db
from ccp.intake.events import Inbound, storable
from ccp.models import Instance, WebhookDelivery, utcnow
from ccp.services import intake
from ccp.services.decisions import downgraded
from ccp.services.errors import ServiceError

log = logging.getLogger(__name__)

TOLERANCE = 5 * 60  # seconds a webhook-timestamp may be off our clock either way (the standard's suggestion)
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
TIMESTAMP = re.compile(r"^[1-9][0-9]{0,11}$")  # as the library re-formats it when it signs
SIGNATURE = re.compile(r"^v1,[A-Za-z0-9+/]{43}=$")  # base64 of the 32 bytes of an HMAC-SHA256
SECRET_PREFIX = "whsec_"
SIGN_HOW = ("sign with webhook-id, webhook-timestamp and webhook-signature: v1,<base64 HMAC-SHA256 of "
            "'<id>.<timestamp>.<body>'> (Standard Webhooks; see docs/api.md)")


@bp.post("/webhooks/ci")
def ci_webhook():
    """A signed CI delivery: record it, then start a rollout of the body's tag (the module docstring has the
    contract). 404 `webhooks_disabled` without a secret; 401 `bad_signature`/`stale_delivery` and 400
    `invalid_delivery` store nothing; 409 `duplicate_delivery` for a known id; any later error (body, rollout) is
    answered as for POST /api/rollouts and recorded as the delivery's `rejected` outcome."""
    headers = _signature_headers()
    secret = current_app.config["CCP"].webhook_secret
    if not secret:
        raise ApiError(404, "webhooks_disabled", "CI webhooks are not enabled on this CCP (set CCP_WEBHOOK_SECRET)")
    raw = _verified_body(headers, signing_key(secret))
    delivery = _record(headers["webhook-id"], raw)
    try:
        data = json_body()
        _refuse_downgrade(data)
        rollout = _start(data, actor="webhook:ci", source="webhook")
    except ServiceError as exc:
        db.session.rollback()
        delivery.status, delivery.detail = "rejected", {"code": exc.code, "message": exc.message[:500]}
        delivery.decision = "ignored" if exc.code == "downgrade" else "rejected"
        delivery.reason, delivery.decided_at = storable(exc.message), utcnow()
        db.session.commit()
        raise
    delivery.status, delivery.rollout_id = "accepted", rollout.id
    delivery.decision, delivery.tag, delivery.decided_at = "started", rollout.tag, utcnow()
    delivery.reason = f"rollout #{rollout.id}: {rollout.tag}"
    db.session.commit()
    return _accepted(rollout)


@bp.post("/hooks/<receiver>")
@bp.post("/hooks/<receiver>/<secret>")
def receive_hook(receiver: str, secret: str | None = None):
    """A release event for a receiver (no API token: the provider's own signature, token or URL secret). 202 with
    the delivery while its decision is pending, 200 once decided (ignored: why); a repeated provider delivery id is
    answered with the first delivery (`duplicate: true`). 404 unknown or disabled receiver and 401 unsigned or
    forged store nothing; 400 `invalid_payload` is kept as rejected; a registry's pull or layer notifications are
    204, nothing stored."""
    got = intake.receive(receiver, Inbound(request.headers, request.get_data(cache=True), secret))
    if got.delivery is None:
        return "", 204
    body = {**delivery_json(got.delivery), "duplicate": got.duplicate}
    return body, 202 if got.delivery.decision == "pending" else 200


def _refuse_downgrade(data: dict) -> None:
    """409 `downgrade` when the body's tag is an older version than a targeted tenant runs (checked only for a
    well-formed body; the rollout service judges the rest)."""
    tag, slugs = data.get("tag"), data.get("instances")
    if not isinstance(tag, str) or (slugs is not None and (not isinstance(slugs, list) or not all(
            isinstance(s, str) and rules.SLUG.fullmatch(s) for s in slugs))):
        return
    stmt = select(Instance)
    if slugs:
        stmt = stmt.where(Instance.slug.in_(slugs))
    ahead = downgraded(tag, list(db.session.execute(stmt).scalars()))
    if ahead:
        raise ServiceError(f"downgrade: {tag} is older than {ahead[0].image_tag}, which {ahead[0].slug} runs; a "
                           "webhook never downgrades (start it by hand on the Rollouts page or with POST "
                           "/api/rollouts)", {"instances": sorted(i.slug for i in ahead)[:50]}, status=409,
                           code="downgrade")


def signing_key(secret: str) -> bytes:
    """The HMAC key CCP_WEBHOOK_SECRET stands for: `whsec_<base64>` is the decoded bytes (padding optional), any
    other secret its UTF-8 bytes. Raises ApiError 503 `webhooks_misconfigured` for a `whsec_` secret that is not
    base64 of at least 16 bytes (never guessed at: a key silently read another way would refuse every delivery)."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        key = b""
    if len(key) < 16:
        log.error("CI webhook off: CCP_WEBHOOK_SECRET starts with %s but the rest is not base64 of >= 16 bytes",
                  SECRET_PREFIX)
        raise ApiError(503, "webhooks_misconfigured", "CCP_WEBHOOK_SECRET starts with whsec_ but is not "
                       "base64 of at least 16 bytes after it; fix the setting (see docs/api.md)")
    return key


def _signature_headers() -> dict[str, str]:
    """The three webhook-* headers, well formed (malformed signature entries dropped); raises ApiError 401 when
    they are missing, malformed or outside the time window, 400 `invalid_delivery` for an unusable id."""
    headers = {name: request.headers.get(name, "").strip() for name in HEADERS}
    missing = [name for name, value in headers.items() if not value]
    if missing and ("X-CCP-Signature" in request.headers or "X-CCP-Delivery" in request.headers):
        _refuse("bad_signature", "X-CCP-Signature and X-CCP-Delivery are no longer accepted (a captured call could "
                "be replayed); " + SIGN_HOW, "old X-CCP-* headers", {"required_headers": list(HEADERS)})
    if missing:
        _refuse("bad_signature", f"missing {', '.join(missing)}; {SIGN_HOW}", "missing " + ", ".join(missing),
                {"required_headers": list(HEADERS)})
    if not DELIVERY_ID.match(headers["webhook-id"]):
        raise ApiError(400, "invalid_delivery", "webhook-id must be a unique id of 1-100 of A-Z a-z 0-9 . _ : -")
    if not TIMESTAMP.match(headers["webhook-timestamp"]):
        _refuse("bad_signature", "webhook-timestamp must be the Unix time in whole seconds", "malformed timestamp")
    skew = int(headers["webhook-timestamp"]) - int(time.time())
    if abs(skew) > TOLERANCE:
        _refuse("stale_delivery", f"webhook-timestamp is {abs(skew)} s {'behind' if skew < 0 else 'ahead of'} "
                f"CCP's clock (at most {TOLERANCE} s either way): sign each delivery as you send it",
                f"timestamp {skew:+d} s off", {"tolerance_seconds": TOLERANCE})
    # Only well-formed v1 signatures go to the library, which raises ValueError (not a verification error) on others.
    signatures = [sig for sig in headers["webhook-signature"].split() if SIGNATURE.match(sig)]
    if not signatures:
        _refuse("bad_signature", "webhook-signature must hold v1,<base64 HMAC-SHA256> (several separated by spaces)",
                "malformed signature header")
    return {**headers, "webhook-signature": " ".join(signatures)}


def _verified_body(headers: dict[str, str], key: bytes) -> bytes:
    """The raw body, when one of the signatures in `headers` is its signature with `key`; ApiError 401 otherwise
    (and 400 for a body that is not UTF-8, which cannot be verified). Nothing is stored for either."""
    raw = request.get_data(cache=True)  # already capped at the body limit (413)
    try:
        text = raw.decode()
    except UnicodeDecodeError:  # the standard signs text; such a body cannot be verified, so it is not recorded
        raise ApiError(400, "invalid_json", "the request body is not UTF-8 text, so its signature cannot be checked "
                       "(nothing was recorded)") from None
    try:  # the library compares each signature with the expected one in constant time (hmac.compare_digest)
        Webhook(key).verify(text, headers, json_parse=False)
    except WebhookVerificationError:
        _refuse("bad_signature", "no webhook-signature matches the HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>."
                "<body>' with CCP_WEBHOOK_SECRET", "wrong signature")
    return raw


def _refuse(code: str, message: str, reason: str, details: dict | None = None):
    """401 for a delivery that is not (validly) signed: a log line without secrets or signatures, nothing stored."""
    log.warning("CI webhook refused from %s: %s", request.remote_addr, reason)
    raise ApiError(401, code, message, details)


def _record(delivery_id: str, raw: bytes) -> WebhookDelivery:
    """The verified delivery, committed as `received`; 409 `duplicate_delivery` (with the first one's rollout) for
    an id already seen, which is what stops a captured delivery from being replayed inside the time window."""
    delivery = WebhookDelivery(source="ci", delivery_id=delivery_id, event="release", signature_ok=True,
                               payload_sha256=hashlib.sha256(raw).hexdigest(), status="received",
                               decision="pending")
    db.session.add(delivery)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        earlier = db.session.execute(select(WebhookDelivery).filter_by(delivery_id=delivery_id)).scalar_one()
        raise ApiError(409, "duplicate_delivery", f"delivery {delivery_id} was already received",
                       {"rollout_id": earlier.rollout_id}) from None
    return delivery
