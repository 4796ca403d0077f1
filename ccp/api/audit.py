"""/api/audit: the audit log, newest first, filterable by instance and actor (admin scope)."""

from __future__ import annotations

from flask import request

from ccp import rules
from ccp.api.auth import require
from ccp.api.errors import ApiError
from ccp.api.base import bp, page_args, page_of
from ccp.api.instances import find_instance
from ccp.models import AuditEvent, iso_utc
from ccp.services.audit import audit_query


def audit_to_dict(event: AuditEvent) -> dict:
    """One audit event as JSON."""
    return {
        "id": event.id, "at": iso_utc(event.at), "actor": event.actor, "action": event.action,
        "instance_id": event.instance_id, "target": event.target, "plan_hash": event.plan_hash,
        "result": event.result, "detail": event.detail or {},
    }


@bp.get("/audit")
@require("admin")
def list_audit():
    """Audit events; ?instance=<id or slug> and ?actor=<exact actor, or a prefix ending in '*'>."""
    page, per_page = page_args()
    ref = request.args.get("instance") or None
    instance_id = find_instance(ref).id if ref else None
    actor = request.args.get("actor") or None
    if actor is not None:
        try:
            rules.check_text(actor, 200)
        except rules.RuleError as exc:
            raise ApiError(400, "invalid_parameter", f"actor {exc}", {"actor": str(exc)}) from None
    stmt = audit_query(instance_id=instance_id, actor=actor)
    return page_of(stmt, page, per_page, audit_to_dict)
