"""Browser UI: one blueprint per area, registered by init_app, with HTML error pages for the UI's paths."""

from __future__ import annotations

from flask import Flask, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import Forbidden, HTTPException


def init_app(app: Flask) -> None:
    """Register the UI blueprints, the login loader, template helpers and the UI's error pages."""
    from ccp.web import admin, auth, fleet, instances, releases, rollouts, upgrades
    from ccp.web.presenters import register_filters

    auth.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(fleet.bp)
    app.register_blueprint(instances.bp)
    app.register_blueprint(releases.bp)
    app.register_blueprint(upgrades.bp)
    app.register_blueprint(rollouts.bp)
    app.register_blueprint(admin.bp)

    register_filters(app)
    app.context_processor(_permissions)
    app.context_processor(lambda: {"default_monitor_window": int(app.config["CCP"].monitor_window_s)})
    app.register_error_handler(CSRFError, _csrf_failed)
    for code in (403, 404, 405):
        app.register_error_handler(code, _html_error)


def _permissions() -> dict:
    """`can_operate` / `can_admin` for templates: they only hide buttons; every view checks again."""
    user = current_user
    authenticated = bool(getattr(user, "is_authenticated", False))
    return {
        "can_operate": authenticated and user.can("operate"),
        "can_admin": authenticated and user.can("admin"),
    }


def _csrf_failed(exc: CSRFError):
    """A missing or wrong CSRF token is a refused request (403), not a malformed one; nothing was changed."""
    return _html_error(Forbidden(f"The form's security token is missing or expired ({exc.description}). "
                                 "Reload the page and try again."))


def _html_error(exc: HTTPException):
    """Short HTML error page (or fragment for htmx) for UI paths; API paths keep their own JSON errors."""
    from ccp.web.htmx import render

    if request.path.startswith("/api/"):
        return exc
    return render("errors/page.html", "errors/_message.html", status=exc.code or 500, error=exc)
