"""JSON API: the /api blueprint, /healthz, /metrics, and the one JSON error shape, registered by init_app."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the API, health and metrics blueprints (each answers its errors in the JSON shape: ccp.api.errors;
    CSRF-exempt: bearer tokens)."""
    from ccp.api import (  # noqa: F401
        agent_updates, audit, awareness, health, instances, metrics, openapi, rollbacks, rollouts, upgrades, webhooks,
    )
    from ccp.api.base import bp
    from ccp.extensions import csrf

    csrf.exempt(bp)
    csrf.exempt(metrics.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(bp)
