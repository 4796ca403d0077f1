"""/healthz: are the database and Redis reachable. Unauthenticated (load balancers probe it); says nothing secret."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from ccp.api import errors
from ccp.extensions import db, get_redis

bp = Blueprint("health", __name__)
errors.register(bp)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    """200 {"status": "ok", "checks": {"db": "ok", "redis": "ok"}}; 503 in the error shape naming what failed.

    Only the exception class is reported (never its message, which can carry a URL with a password).
    """
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["db"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        db.session.rollback()
        log.warning("healthz: database check failed: %s", type(exc).__name__)
        checks["db"] = f"error: {type(exc).__name__}"
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        log.warning("healthz: redis check failed: %s", type(exc).__name__)
        checks["redis"] = f"error: {type(exc).__name__}"
    failed = sorted(k for k, v in checks.items() if v != "ok")
    headers = {"Cache-Control": "no-store"}
    if not failed:
        return jsonify(status="ok", checks=checks), 200, headers
    body = {"status": "unavailable", "checks": checks,
            "error": {"code": "unavailable", "message": "unreachable: " + ", ".join(failed),
                      "details": {"failed": failed, "checks": checks}}}
    return jsonify(body), 503, headers
