"""The JSON error shape of /api, /metrics and /healthz: {"error": {"code", "message", "details"}}.

Each JSON blueprint (api, metrics, health) answers its views' errors here (`register`): a ServiceError as it is (the
services' refusals and the API's own ApiError), Werkzeug's HTTP errors with a short code, anything else as a 500
that never echoes the exception. Errors raised before a blueprint is known - no route matches (404, 405), or a body
over the limit on such a path (413) - reach the app's handlers (ccp.web.errors), which answer these paths with
`http_error` too (`wants_json`), as microblog's app/errors does for its API.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from ccp.bodies import BodyTooLarge
from ccp.extensions import db
from ccp.services.errors import ServiceError

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/metrics", "/healthz")

# Short machine codes for Werkzeug's HTTP errors (clients match on these, not on messages).
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "body_too_large", 415: "unsupported_media_type", 422: "validation_failed",
    429: "rate_limited", 500: "internal_error", 502: "bad_gateway", 503: "unavailable",
}


class ApiError(ServiceError):
    """A request the API itself refuses (authentication, body, query, lookups); `headers` go on the answer."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message, details, status=status, code=code)
        self.headers = headers or {}


def register(blueprint: Blueprint) -> None:
    """Answer every error of `blueprint`'s views in the JSON shape."""
    blueprint.register_error_handler(ServiceError, service_error)
    blueprint.register_error_handler(HTTPException, http_error)
    blueprint.register_error_handler(Exception, internal_error)


def error_response(status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None):
    """A JSON error response in the one shape, with `Cache-Control: no-store`."""
    response = jsonify(error={"code": code, "message": message, "details": details or {}})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def wants_json() -> bool:
    """True for requests to the JSON surfaces (the API, /metrics, /healthz)."""
    path = request.path
    return path == "/api" or any(path.startswith(p) for p in JSON_PREFIXES)


def service_error(exc: ServiceError):
    """A refusal as the JSON shape; the session is rolled back first, so nothing half-done is committed later."""
    db.session.rollback()
    return error_response(exc.status, exc.code, exc.message, exc.details, getattr(exc, "headers", None))


def http_error(exc: HTTPException):
    """A Werkzeug HTTP error as the JSON shape (Allow header kept on 405)."""
    status = exc.code or 500
    headers, details = {}, {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    if isinstance(exc, BodyTooLarge):
        details = {"limit": exc.limit}
    return error_response(status, _HTTP_CODES.get(status, "http_error"), _message_for(exc), details, headers)


def internal_error(exc: Exception):
    """An unexpected error: logged with its traceback, answered 500 without its text (it could hold a secret)."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "internal error (see the server log)")


def _message_for(exc: HTTPException) -> str:
    status = exc.code or 500
    if status == 400 and "json" in (exc.description or "").lower():
        return "the request body is not valid JSON"
    if status == 404:
        return "no such resource"
    if status == 405:
        return f"method {request.method} is not allowed here"
    if status == 413:
        return exc.description if isinstance(exc, BodyTooLarge) else "the request body is too large"
    return exc.name
