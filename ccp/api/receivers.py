"""Receiver routes (admin: list, create, show, change, rotate the secret) and the deliveries log (list: read;
replay: admin). The intake itself, `POST /api/hooks/<receiver>`, is in ccp.api.webhooks.

A receiver's secret is in exactly two answers: the one that created it and the one that rotated it (`secret`, and
`url` with the secret in its path for Docker Hub and Quay). Every other answer says only `has_secret`.
"""

from __future__ import annotations

from flask import g, request, url_for
from sqlalchemy import select

from ccp import rules
from ccp.api.auth import require
from ccp.api.base import QUERY_PARAMS, bp, json_body, page_args, page_of, reject_unknown
from ccp.api.errors import ApiError
from ccp.extensions import db
from ccp.models import DECISIONS, Receiver, WebhookDelivery, iso_utc
from ccp.services import intake
from ccp.services import receivers as svc

# (the blueprint refuses query parameters a route does not list here)
QUERY_PARAMS.update({"api.list_receivers": {"page", "per_page"},
                     "api.list_deliveries": {"page", "per_page", "receiver", "decision"}})


@bp.get("/receivers")
@require("admin")
def list_receivers():
    """Receivers by name, paginated."""
    page, per_page = page_args()
    return page_of(select(Receiver).order_by(Receiver.name), page, per_page, receiver_json)


@bp.post("/receivers")
@require("admin")
def create_receiver():
    """Create a receiver; the answer holds its secret and URL this once (201)."""
    receiver, secret = svc.create_receiver(json_body(), actor=g.actor)
    return _with_secret(receiver, secret), 201, {"Location": url_for("api.get_receiver", name=receiver.name)}


@bp.get("/receivers/<name>")
@require("admin")
def get_receiver(name: str):
    """One receiver (no secret)."""
    return receiver_json(_find(name))


@bp.patch("/receivers/<name>")
@require("admin")
def update_receiver(name: str):
    """Change a receiver's fields (not its name, kind or secret); `enabled: false` turns it off (404 to senders)."""
    receiver = _find(name)
    return receiver_json(svc.update_receiver(receiver, json_body(), actor=g.actor))


@bp.post("/receivers/<name>/rotate-secret")
@require("admin")
def rotate_receiver_secret(name: str):
    """A new secret (CCP makes it unless `secret` is given); the answer holds it and the URL this once."""
    receiver = _find(name)
    data = json_body(allow_empty=True)
    reject_unknown(data, ("secret",))
    return _with_secret(receiver, svc.rotate_secret(receiver, actor=g.actor, secret=data.get("secret")))


@bp.get("/deliveries")
@require("read")
def list_deliveries():
    """Deliveries newest first, with their decision; ?receiver=<name> and ?decision=<decision> filter."""
    page, per_page = page_args()
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id.desc())
    name = request.args.get("receiver")
    if name is not None:
        stmt = stmt.where(WebhookDelivery.receiver_id == _find(name).id)
    decision = request.args.get("decision")
    if decision is not None:
        if decision not in DECISIONS:
            raise ApiError(400, "invalid_parameter", "decision must be one of " + ", ".join(DECISIONS),
                           {"decision": "unknown decision"})
        stmt = stmt.where(WebhookDelivery.decision == decision)
    return page_of(stmt, page, per_page, delivery_json)


@bp.post("/deliveries/<id:delivery_id>/replay")
@require("admin")
def replay_delivery(delivery_id: int):
    """Decide a receiver's delivery again now (a new delivery, `replay_of` this one); 409 for CI deliveries."""
    reject_unknown(json_body(allow_empty=True), ())
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    return delivery_json(intake.replay(delivery, actor=g.actor))


def receiver_json(receiver: Receiver) -> dict:
    """A receiver as JSON, without its secret or registry password."""
    return {
        "id": receiver.id, "name": receiver.name, "kind": receiver.kind, "enabled": receiver.enabled,
        "url": hook_url(receiver), "has_secret": bool(receiver.secret_enc or receiver.secret_sha256),
        "repository": receiver.repository, "image": receiver.image, "registry_username": receiver.registry_username,
        "has_registry_password": bool(receiver.registry_password_enc), "instances": list(receiver.instances),
        "semver_range": receiver.semver_range, "tag_include": receiver.tag_include,
        "tag_exclude": receiver.tag_exclude, "min_age_s": receiver.min_age_s, "canary": receiver.canary,
        "wave_size": receiver.wave_size, "created_at": iso_utc(receiver.created_at),
        "updated_at": iso_utc(receiver.updated_at),
    }


def hook_url(receiver: Receiver, secret: str | None = None) -> str:
    """Where the provider sends deliveries; a Docker Hub/Quay URL ends in its secret (`{secret}` when not given)."""
    url = url_for("api.receive_hook", receiver=receiver.name, _external=True)
    if svc.hook_path_secret(receiver):
        url += "/" + (secret or "{secret}")
    return url


def delivery_json(delivery: WebhookDelivery) -> dict:
    """A delivery as JSON: what it named, its decision and reason, the rollout it started (no body, no secret)."""
    return {
        "id": delivery.id, "source": delivery.source, "event": delivery.event,
        "receiver": delivery.receiver.name if delivery.receiver else None, "delivery_id": delivery.delivery_id,
        "received_at": iso_utc(delivery.received_at), "status": delivery.status, "decision": delivery.decision,
        "reason": delivery.reason, "repository": delivery.repository, "tag": delivery.tag,
        "digest": delivery.digest, "resolved": (delivery.detail or {}).get("resolved"),
        "rollout_id": delivery.rollout_id, "replay_of": delivery.replay_of, "decided_at": iso_utc(delivery.decided_at),
    }


def _with_secret(receiver: Receiver, secret: str | None) -> dict:
    return {**receiver_json(receiver), "secret": secret, "url": hook_url(receiver, secret)}


def _find(name: str) -> Receiver:
    receiver = svc.get_receiver(name) if rules.SLUG.fullmatch(name or "") else None
    if receiver is None:
        raise ApiError(404, "not_found", f"no receiver {name[:63]!r}")
    return receiver
