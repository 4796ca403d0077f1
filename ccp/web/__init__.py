"""Browser UI: one blueprint per area, registered by init_app, and the app's error pages (ccp.web.errors)."""

from __future__ import annotations

from flask import Flask
from flask_login import current_user


def init_app(app: Flask) -> None:
    """Register the UI blueprints, the login loader, template helpers and the UI's error pages."""
    from ccp.web import admin, auth, errors, fleet, instances, receivers, releases, rollouts, static_routes, upgrades
    from ccp.web import agent_updates, enroll, notify_admin, rollbacks
    from ccp.web.diffview import diff_view
    from ccp.web.presenters import register_filters

    auth.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(fleet.bp)
    app.register_blueprint(instances.bp)
    app.register_blueprint(enroll.bp)
    app.register_blueprint(releases.bp)
    app.register_blueprint(upgrades.bp)
    app.register_blueprint(rollouts.bp)
    app.register_blueprint(rollbacks.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(notify_admin.bp)
    app.register_blueprint(agent_updates.bp)
    app.register_blueprint(receivers.bp)
    app.register_blueprint(static_routes.bp)

    register_filters(app)
    app.add_template_filter(diff_view, "diff_view")
    app.context_processor(_permissions)
    app.context_processor(lambda: {"default_monitor_window": int(app.config["CCP"].monitor_window_s)})
    errors.init_app(app)


def _permissions() -> dict:
    """`can_operate` / `can_admin` for templates: they only hide buttons; every view checks again."""
    user = current_user
    authenticated = bool(getattr(user, "is_authenticated", False))
    return {
        "can_operate": authenticated and user.can("operate"),
        "can_admin": authenticated and user.can("admin"),
    }
