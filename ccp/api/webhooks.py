"""The CI webhook that starts a rollout.

The webhook is how a CI pipeline drives the fleet after publishing an image: it POSTs the tag to
`/api/webhooks/ci`, signed with the shared secret CCP_WEBHOOK_SECRET (no API token: CI systems hold one secret
per hook, as GitHub/GitLab do):

    X-CCP-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>
    X-CCP-Delivery:  <unique id of this delivery, e.g. the CI run id>      (a repeated id is refused: 409)
    body:            {"tag": "v2", "instances": [...optional slugs], "canary": 1, "waveSize": 5}

Unsigned or wrongly signed calls get 401 and leave no row behind (only a log line, so nobody can fill the database
without the secret); every signed delivery is kept with its outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ccp.api.base import bp, json_body
from ccp.api.errors import ApiError
from ccp.api.rollouts import _accepted, _start
from ccp.extensions import db
from ccp.models import WebhookDelivery

log = logging.getLogger(__name__)
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


@bp.post("/webhooks/ci")
def ci_webhook():
    """A signed CI delivery: start a rollout of the body's tag (see the module docstring for the contract)."""
    delivery_id = request.headers.get("X-CCP-Delivery", "")
    if not DELIVERY_ID.match(delivery_id):
        raise ApiError(400, "invalid_delivery", "send a unique X-CCP-Delivery id (1-100 of A-Z a-z 0-9 . _ : -)")
    signature = request.headers.get("X-CCP-Signature", "")
    if not signature:
        raise ApiError(401, "bad_signature", "sign the body: X-CCP-Signature: sha256=<hex HMAC-SHA256>")
    secret = current_app.config["CCP"].webhook_secret
    if not secret:
        raise ApiError(404, "webhooks_disabled", "CI webhooks are not enabled on this CCP (set CCP_WEBHOOK_SECRET)")
    raw = request.get_data(cache=True)
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        log.warning("CI webhook refused from %s: wrong signature", request.remote_addr)
        raise ApiError(401, "bad_signature", "the X-CCP-Signature header does not match the body")
    data = json_body()
    delivery = WebhookDelivery(source="ci", delivery_id=delivery_id, event="release", signature_ok=True,
                               payload_sha256=hashlib.sha256(raw).hexdigest(), status="received")
    db.session.add(delivery)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        earlier = db.session.execute(select(WebhookDelivery).filter_by(delivery_id=delivery_id)).scalar_one()
        raise ApiError(409, "duplicate_delivery", f"delivery {delivery_id} was already received",
                       {"rollout_id": earlier.rollout_id}) from None
    try:
        rollout = _start(data, actor="webhook:ci", source="webhook")
    except ApiError as exc:
        delivery.status, delivery.detail = "rejected", {"code": exc.code, "message": exc.message[:500]}
        db.session.commit()
        raise
    delivery.status, delivery.rollout_id = "accepted", rollout.id
    db.session.commit()
    return _accepted(rollout)
