"""One error shape for every JSON surface: {"error": {"code", "message", "details"}}.

The choice between a JSON and an HTML error is made here and only here (`wants_json`): requests under /api, /metrics
and /healthz get JSON, everything else keeps Werkzeug's HTML page. This covers errors raised by views, by routing
(404/405 for unknown paths or methods under /api), by body parsing (malformed JSON, 413) and by the auth decorator.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, default_exceptions

from ccp.bodies import BodyTooLarge

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/metrics", "/healthz")

# Short machine codes for Werkzeug's HTTP errors (clients match on these, not on messages).
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "body_too_large", 415: "unsupported_media_type", 422: "validation_failed",
    429: "rate_limited", 500: "internal_error", 502: "bad_gateway", 503: "unavailable",
}


class ApiError(Exception):
    """An API request cannot be served; rendered as the JSON error shape with `status`."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


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


def init_app(app: Flask) -> None:
    """Install the app-wide handlers that turn errors on JSON surfaces into the JSON error shape."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    def _http_error(exc: HTTPException):
        if wants_json():
            return json_http_error(exc)
        html = html_handlers.get(exc.code)
        return html(exc) if html is not None else exc  # the UI's page for this code, else Werkzeug's

    # Flask prefers a handler registered for a status code over one for the HTTPException class, so the UI's
    # code handlers (403/404/405...) would answer /api paths with HTML. Take over every code here and hand
    # non-JSON requests back to the UI's handler: the JSON-or-HTML choice stays in this one function.
    codes = app.error_handler_spec.setdefault(None, {})
    html_handlers = {code: handlers[default_exceptions[code]] for code, handlers in codes.items()
                     if code in default_exceptions and default_exceptions[code] in handlers}
    for code in set(_HTTP_CODES) | set(html_handlers):
        app.register_error_handler(code, _http_error)
    app.register_error_handler(HTTPException, _http_error)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException) or not wants_json():
            raise exc  # HTML surfaces: Flask's own handling (propagates in tests, 500 page in production)
        log.exception("unhandled error on %s %s", request.method, request.path)
        # Never echo the exception text: it could hold values we must not show a client.
        return error_response(500, "internal_error", "internal error (see the server log)")


def json_http_error(exc: HTTPException):
    """A Werkzeug HTTP error as the JSON error shape (Allow header kept on 405)."""
    status = exc.code or 500
    headers, details = {}, {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    if isinstance(exc, BodyTooLarge):
        details = {"limit": exc.limit}
    return error_response(status, _HTTP_CODES.get(status, "http_error"), _message_for(exc), details, headers)


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
