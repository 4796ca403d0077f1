"""Browser UI: one blueprint per area, registered by init_app."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the UI blueprints and the login loader."""
    from ccp.web import auth, fleet

    auth.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(fleet.bp)
