"""/metrics: Prometheus text format, read from the database and Redis at scrape time.

It needs a bearer token with the `read` scope (Prometheus: `authorization: {credentials_file: ...}`): the metrics name
every instance and show fleet activity, which is more than an anonymous network neighbour should learn.
"""

from __future__ import annotations

from flask import Blueprint, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from ccp.api import errors
from ccp.api.auth import require
from ccp.services.metrics import render_metrics

bp = Blueprint("metrics", __name__)
errors.register(bp)


@bp.get("/metrics")
@require("read")
def metrics():
    """The Prometheus exposition of CCP's metrics."""
    body = render_metrics(current_app._get_current_object())
    return body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
