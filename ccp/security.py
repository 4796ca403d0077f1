"""Security baseline for every response: headers, cookie flags, session protection.

- CSP: scripts, styles and everything else only from our own origin; no inline scripts, no eval, no framing,
  no plugins; forms post only to us.
- frame-ancestors 'none' (+ X-Frame-Options for old browsers), nosniff, Referrer-Policy same-origin,
  Permissions-Policy without powerful features.
- HSTS only when the request came over TLS (a plain-HTTP dev server must not pin browsers to HTTPS).
- Session cookie: HttpOnly and SameSite=Lax always, Secure whenever the request is TLS (or SESSION_COOKIE_SECURE).
  Behind a TLS-terminating proxy, wrap the app in werkzeug's ProxyFix so `request.is_secure` is true.
"""

from __future__ import annotations

import time

from flask import Flask, current_app, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

CSP = "; ".join([  # noqa: FLY002 - one directive per line reads better
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=31536000; includeSubDomains"
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class TlsAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever the current request arrived over TLS.

    Two costs of Flask's version are paid once instead of on every request (the status widget is polled every
    second per open page, with the same cookie each time):
    - the signing serializer is built once per secret (Flask builds one per request, serializing a probe value);
    - a cookie whose signature was verified is remembered, byte for byte, with its signing time: the same cookie
      again skips HMAC, base64, zlib and JSON but is still refused once older than the session lifetime. Only
      sessions holding plain values (no lists or dicts, e.g. flashed messages) are remembered, so a request can
      never change what the next one starts from. A rotated secret forgets every remembered cookie."""

    VERIFIED_KEPT = 4096  # distinct cookies remembered (roughly: logged-in browsers polling this process)
    _PLAIN = (str, int, float, bool, type(None))

    def __init__(self) -> None:
        self._serializers: dict[tuple, object] = {}
        self._verified: dict[str, tuple[dict, float]] = {}

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or _request_is_tls()

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if serializer is not None:
                self._serializers = {keys: serializer}  # a rotated secret replaces the old serializer ...
                self._verified = {}  # ... and what it verified
        return serializer

    def open_session(self, app: Flask, request):
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return self.session_class()
        max_age = app.permanent_session_lifetime.total_seconds()
        known = self._verified.get(cookie)
        if known is not None and 0 <= time.time() - known[1] <= max_age:
            return self.session_class(known[0])
        try:
            data, signed_at = serializer.loads(cookie, max_age=int(max_age), return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if all(isinstance(value, self._PLAIN) for value in data.values()):
            if len(self._verified) >= self.VERIFIED_KEPT:
                self._verified = {}
            self._verified[cookie] = (data, signed_at.timestamp())
        return self.session_class(data)


def init_app(app: Flask) -> None:
    """Install the headers, cookie flags and Flask-Login session protection on `app`."""
    from ccp.extensions import login_manager

    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.session_interface = TlsAwareSessionInterface()
    # "strong": a session whose identifier (IP + user agent hash) changes is dropped, not just marked non-fresh.
    login_manager.session_protection = "strong"
    app.after_request(add_security_headers)
    # CSRF: Flask-WTF's own hook resolves view exemptions before it looks at the method; ours skips safe methods
    # first (every poll is a GET), then lets Flask-WTF check exactly as before.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.before_request(_protect_unsafe_methods)


def _protect_unsafe_methods() -> None:
    """Flask-WTF's CSRF check (honouring csrf.exempt) for POST/PUT/PATCH/DELETE; nothing for GET/HEAD/OPTIONS."""
    from ccp.extensions import csrf

    config = current_app.config
    if request.method in config["WTF_CSRF_METHODS"] and config["WTF_CSRF_ENABLED"]:
        csrf.protect(apply_exemptions=True)


_HEADER_ITEMS = tuple(HEADERS.items())
_HEADER_NAMES = frozenset(name.lower() for name in HEADERS)


def add_security_headers(response):
    """Add the baseline headers to a response; a header the view set already is kept (a view may tighten one,
    e.g. a CSP for one page). One pass over the response's headers instead of one lookup per baseline header."""
    present = {name.lower() for name, _ in response.headers} & _HEADER_NAMES
    if present:
        response.headers.extend([(k, v) for k, v in _HEADER_ITEMS if k.lower() not in present])
    else:
        response.headers.extend(_HEADER_ITEMS)
    if _request_is_tls():
        response.headers.setdefault("Strict-Transport-Security", HSTS)
        _secure_other_cookies(response)
    return response


def _request_is_tls() -> bool:
    try:
        return request.is_secure
    except RuntimeError:  # outside a request (e.g. the CLI)
        return False


def _secure_other_cookies(response) -> None:
    """Cookies set by anything else than the session interface get Secure too when the request is TLS."""
    cookies = response.headers.getlist("Set-Cookie")
    if not cookies or all("; secure" in c.lower() for c in cookies):
        return
    response.headers.remove("Set-Cookie")
    for cookie in cookies:
        response.headers.add("Set-Cookie", cookie if "; secure" in cookie.lower() else cookie + "; Secure")
