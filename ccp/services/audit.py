"""The audit log: every mutating action, who did it, to which instance, with which plan, and the result."""

from __future__ import annotations

from ccp.extensions import db
from ccp.models import AuditEvent, Instance


def record(actor: str, action: str, *, instance: Instance | None = None, target: str | None = None,
           plan_hash: str | None = None, result: str = "ok", detail: dict | None = None) -> AuditEvent:
    """Append one audit event and commit. `detail` must hold no secret values (callers pass names, not values)."""
    event = AuditEvent(
        actor=actor, action=action, instance_id=instance.id if instance is not None else None,
        target=target or (instance.slug if instance is not None else None), plan_hash=plan_hash, result=result,
        detail=detail or {},
    )
    db.session.add(event)
    db.session.commit()
    return event
