"""JSON API: its own blueprint(s) and JSON error handler, registered by init_app."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the API blueprints."""
    from ccp.api import health

    app.register_blueprint(health.bp)
