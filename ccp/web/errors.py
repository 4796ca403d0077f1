"""The app-wide error handlers: how an error looks in the browser, and the one place that picks HTML or JSON.

Errors raised in a JSON blueprint's views are answered there (ccp.api.errors). Everything else comes here, where
the choice is made once, as microblog's app/errors does: requests to the JSON surfaces (ccp.api.errors.wants_json:
routing errors under /api, which no blueprint has claimed yet) get the API's JSON shape; UI requests get
- 403/404/405 as a short page (the message partial alone for htmx), other HTTP errors as Werkzeug's page;
- a refused CSRF token as a 403 page (nothing was changed);
- a service refusal that no view showed in place (forms and the release dialog do) as the message partial with
  the refusal's status.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import Forbidden, HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from ccp.api import errors as api_errors
from ccp.extensions import db
from ccp.services.errors import ServiceError
from ccp.web import htmx

PAGE_CODES = (403, 404, 405)  # HTTP errors the UI shows as its own page


@dataclass(frozen=True)
class ErrorMessage:
    """What the message partial shows: "404 Not Found. <description>"."""

    code: int
    name: str
    description: str


def init_app(app: Flask) -> None:
    """Install the app-wide handlers."""
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(CSRFError, csrf_failed)
    app.register_error_handler(ServiceError, service_refused)


def http_error(exc: HTTPException):
    """JSON for the JSON surfaces; the UI's page for 403/404/405; Werkzeug's page for any other code."""
    if api_errors.wants_json():
        return api_errors.http_error(exc)
    if exc.code in PAGE_CODES:
        return error_page(exc)
    return exc


def csrf_failed(exc: CSRFError):
    """A missing or wrong CSRF token is a refused request (403), not a malformed one; nothing was changed."""
    return error_page(Forbidden(f"The form's security token is missing or expired ({exc.description}). "
                                "Reload the page and try again."))


def service_refused(exc: ServiceError):
    """A service's refusal that reached no view's own presentation: the message partial with its status."""
    if api_errors.wants_json():
        return api_errors.service_error(exc)
    db.session.rollback()
    status = exc.status
    return error_page(ErrorMessage(status, HTTP_STATUS_CODES.get(status, "Error"), exc.message))


def error_page(error: HTTPException | ErrorMessage):
    """The short error page, or the message partial alone for htmx."""
    return htmx.render("errors/page.html", "errors/_message.html", status=error.code or 500, error=error)
