"""Release intake: a delivery to a receiver is verified, recorded, and queued for a decision; admins can replay.

`receive` is what `POST /api/hooks/<receiver>` does:
1. An unknown or disabled receiver is 404, a delivery that does not prove it knows the receiver's secret is 401:
   nothing is stored for either (a log line only).
2. A verified delivery is kept (webhook_deliveries) with what it named (repository, tag, digest; never its body)
   and a decision. A body CCP cannot read is `rejected` (400). An event that is no release (a ping, a branch push),
   a repository the receiver does not listen for, or tags the policy refuses are `ignored` at once with the reason.
   A delivery whose provider id was seen before is a replay: answered with the first one's decision, not kept twice.
   A registry's pull/layer notifications are acknowledged without a row (noise, see Parsed.keep).
3. Anything else is `pending`: one decision job per receiver is queued (ccp.jobs.decide_deliveries); it waits out
   the coalescing window (CCP_RECEIVER_WINDOW_S after the oldest pending delivery) and decides for every pending
   delivery of the receiver at once (ccp.services.decisions) - a multi-arch burst is one decision, one rollout.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ccp.bodies import parse_json
from ccp.extensions import db, get_queue, get_redis
from ccp.intake.events import BadPayload, Hint, Inbound, Parsed, Unauthorized, storable
from ccp.intake.providers import provider
from ccp.models import Receiver, WebhookDelivery, as_utc, utcnow
from ccp.services import decisions
from ccp.services.errors import ServiceError
from ccp.services.receivers import get_receiver, hook_path_secret, policy_of, secret_of

log = logging.getLogger(__name__)
MAX_WAIT_S = 60.0  # a decision job waits at most this long for its window, whatever the setting says
LOCK_S = 300

def _key(what: str, receiver_id: int) -> str:
    """A Redis key of this install (CCP_QUEUE names it: installs and test runs may share a Redis server)."""
    return f"ccp:{current_app.config['CCP'].queue_name}:intake:{what}:{receiver_id}"


@dataclass(frozen=True)
class Received:
    """What became of one delivery: its row (None for noise acknowledged without one: Parsed.keep), and whether it
    repeats an earlier delivery (not stored again)."""

    delivery: WebhookDelivery | None
    duplicate: bool = False


def receive(name: str, inbound: Inbound) -> Received:
    """Verify, record and queue one delivery to receiver `name` (see the module docstring).

    Raises ServiceError 404 (`not_found`), 401 (`bad_signature`: nothing stored) or 400 (`invalid_payload`: kept
    as rejected)."""
    receiver = get_receiver(name)
    if receiver is None or not receiver.enabled or (inbound.path_secret is not None
                                                    and not hook_path_secret(receiver)):
        raise ServiceError(f"no receiver {name[:63]!r} is enabled here", status=404, code="not_found")
    kind = provider(receiver.kind)
    try:
        kind.verify(secret_of(receiver), inbound)
    except Unauthorized as exc:
        log.warning("receiver %s refused a delivery: %s", receiver.name, exc.message)
        raise ServiceError(exc.message, status=401, code="bad_signature") from None
    digest = hashlib.sha256(inbound.body).hexdigest()
    try:
        parsed = kind.parse(inbound.headers, _payload(inbound))
    except BadPayload as exc:
        delivery = _record(receiver, Parsed("unreadable"), digest, "rejected", exc.message[:500])
        raise ServiceError(exc.message, {"delivery": delivery.id}, status=400, code="invalid_payload") from None
    if not parsed.keep:
        return Received(None)
    earlier = _seen(receiver, parsed.delivery_id)
    if earlier is not None:
        return Received(earlier, duplicate=True)
    decision, reason = _screen(receiver, parsed)
    try:
        delivery = _record(receiver, parsed, digest, decision, reason)
    except IntegrityError:  # the same provider id, committed by a concurrent request a moment ago
        db.session.rollback()
        return Received(_seen(receiver, parsed.delivery_id), duplicate=True)
    if decision == "pending":
        schedule(receiver.id)
    return Received(delivery)


def replay(delivery: WebhookDelivery, *, actor: str) -> WebhookDelivery:
    """Decide a receiver delivery again, now: a new delivery row (replay_of the old one) with a fresh decision.

    Raises ServiceError 409 `not_replayable` for CI deliveries and deliveries whose receiver is gone or disabled."""
    receiver = db.session.get(Receiver, delivery.receiver_id) if delivery.receiver_id else None
    if receiver is None or not delivery.detail.get("hints"):
        raise ServiceError("only a receiver's delivery that named a release can be replayed", status=409,
                           code="not_replayable")
    if not receiver.enabled:
        raise ServiceError(f"receiver {receiver.name} is disabled: enable it first", status=409,
                           code="not_replayable")
    again = WebhookDelivery(source=delivery.source, event=delivery.event, signature_ok=True, status="accepted",
                            payload_sha256=delivery.payload_sha256, receiver_id=receiver.id, decision="pending",
                            repository=delivery.repository, tag=delivery.tag, digest=delivery.digest,
                            replay_of=delivery.id, detail={"hints": delivery.detail["hints"], "replayed_by": actor})
    db.session.add(again)
    db.session.commit()
    decide_pending(receiver.id, wait=False)
    db.session.refresh(again)
    return again


def schedule(receiver_id: int) -> None:
    """Queue the decision job for a receiver unless one is queued already (the job clears the mark when it starts,
    so a delivery arriving while it decides queues the next one). Redis down: logged; a replay decides later."""
    try:
        if get_redis().set(_key("queued", receiver_id), "1", nx=True, ex=int(MAX_WAIT_S + LOCK_S)):
            get_queue().enqueue("ccp.jobs.decide_deliveries", receiver_id, job_timeout=LOCK_S + MAX_WAIT_S + 60,
                                description=f"decide deliveries of receiver #{receiver_id}")
    except Exception:  # noqa: BLE001 - the delivery is kept as pending; replaying it decides it
        log.warning("could not queue the decision for receiver #%s (Redis unavailable)", receiver_id)


def decide_pending(receiver_id: int, *, wait: bool = True) -> int:
    """Decide every pending delivery of a receiver as one (the job `decide_deliveries`); returns how many.

    With `wait`, first sleeps until the coalescing window of the oldest pending delivery has passed (at most
    MAX_WAIT_S): deliveries of one push arrive within seconds of each other, and deciding on the first would act on
    half a push. The worker is busy meanwhile; the window is short by design (CCP_RECEIVER_WINDOW_S)."""
    redis = get_redis()
    redis.delete(_key("queued", receiver_id))
    if wait:
        oldest = db.session.execute(select(func.min(WebhookDelivery.received_at)).where(
            WebhookDelivery.receiver_id == receiver_id, WebhookDelivery.decision == "pending")).scalar()
        if oldest is not None:
            window = min(current_app.config["CCP"].receiver_window_s, MAX_WAIT_S)
            remaining = window - (utcnow() - as_utc(oldest)).total_seconds()
            if remaining > 0:
                time.sleep(remaining)
    with redis.lock(_key("decide", receiver_id), timeout=LOCK_S, blocking_timeout=LOCK_S):
        db.session.expire_all()
        receiver = db.session.get(Receiver, receiver_id)
        pending = list(db.session.execute(select(WebhookDelivery).where(
            WebhookDelivery.receiver_id == receiver_id, WebhookDelivery.decision == "pending")
            .order_by(WebhookDelivery.id)).scalars())
        if receiver is None or not pending:
            return 0
        decisions.apply(receiver, pending)
        return len(pending)


def _payload(inbound: Inbound) -> dict:
    """The JSON object a provider sent (as the body, or as GitHub/Gitea's form field `payload`)."""
    raw = inbound.body
    ctype = next((v for k, v in inbound.headers.items() if k.lower() == "content-type"), "")
    if ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            raw = parse_qs(raw.decode("ascii"), strict_parsing=True).get("payload", [""])[0].encode()
        except (UnicodeDecodeError, ValueError):
            raise BadPayload("a form body must carry the JSON in its `payload` field") from None
    try:
        payload = parse_json(raw)
    except ValueError as exc:
        raise BadPayload(f"the body is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise BadPayload("the body must be a JSON object")
    return payload


def _screen(receiver: Receiver, parsed: Parsed) -> tuple[str, str | None]:
    """The decision that needs no registry: ignored (no release, another repository, tags outside the policy) or
    pending."""
    if parsed.ignored or not parsed.hints:
        return "ignored", f"not a release: {parsed.ignored or 'nothing named'}"[:500]
    mine = [h for h in parsed.hints if h.repository == receiver.repository]
    if not mine:
        return "ignored", (f"unknown repository: {parsed.hints[0].repository} (this receiver listens for "
                           f"{receiver.repository})")[:500]
    policy = policy_of(receiver)
    refusals = [policy.refuses(h.tag) if h.tag else None for h in mine]  # a digest-only hint is for the registry
    if all(refusals):
        return "ignored", f"policy: {refusals[0]}"[:500]
    return "pending", None


def _record(receiver: Receiver, parsed: Parsed, payload_sha256: str, decision: str,
            reason: str | None) -> WebhookDelivery:
    hints = [h for h in parsed.hints if h.repository == receiver.repository] or list(parsed.hints)
    main = next((h for h in hints if h.tag), hints[0] if hints else Hint(""))
    delivery = WebhookDelivery(
        source=receiver.kind, event=storable(parsed.event, 100), signature_ok=True, payload_sha256=payload_sha256,
        status="rejected" if decision == "rejected" else "accepted", receiver_id=receiver.id, decision=decision,
        reason=storable(reason) if reason else None, repository=main.repository or None, tag=main.tag,
        digest=main.digest,
        delivery_id=f"r{receiver.id}:{parsed.delivery_id}" if parsed.delivery_id else None,
        decided_at=None if decision == "pending" else utcnow(),
        detail={"hints": [{"repository": h.repository, "tag": h.tag, "digest": h.digest} for h in hints[:50]]})
    db.session.add(delivery)
    db.session.commit()
    return delivery


def _seen(receiver: Receiver, provider_id: str | None) -> WebhookDelivery | None:
    if not provider_id:
        return None
    return db.session.execute(select(WebhookDelivery).filter_by(
        delivery_id=f"r{receiver.id}:{provider_id}")).scalar_one_or_none()
