"""The audit log: every mutating action, who did it, to which instance, with which plan, and the result."""

from __future__ import annotations

from sqlalchemy import select

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


def audit_query(*, instance_id: int | None = None, actor: str | None = None):
    """A select of audit events, newest first, filtered by instance id and actor.

    `actor` matches exactly, or as a prefix when it ends with '*' (e.g. 'token:*', 'user:alice'). Shared by the
    API and the admin UI.
    """
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc())
    if instance_id is not None:
        stmt = stmt.filter(AuditEvent.instance_id == instance_id)
    if actor:
        if actor.endswith("*"):
            prefix = actor[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.filter(AuditEvent.actor.like(prefix + "%", escape="\\"))
        else:
            stmt = stmt.filter(AuditEvent.actor == actor)
    return stmt
