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

from flask import Flask, current_app, request
from flask.sessions import SecureCookieSessionInterface

from ccp.web.polling import poll_cache, recheck_seconds

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

    A cookie this process verified less than CCP_USER_RECHECK_S ago is not verified and decoded again (the
    "cookie" entries of ccp.web.polling.PollCache, which say what that buys): Flask's own loading runs otherwise.
    Only sessions of plain values are kept (not flashed messages, a list), so no request can change what the next
    one starts from."""

    _PLAIN = (str, int, float, bool, type(None))

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or _request_is_tls()

    def cache_key(self, app: Flask, cookie: str) -> tuple:
        """Where a verified `cookie` is kept: with the keys that verified it, so a rotated secret misses."""
        return "cookie", app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()), cookie

    def open_session(self, app: Flask, request):
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return super().open_session(app, request)
        cache, key = poll_cache(app), self.cache_key(app, cookie)
        kept = cache.get(key, recheck_seconds(app))
        if kept is not None:
            return self.session_class(kept)
        session = super().open_session(app, request)
        if session and all(isinstance(value, self._PLAIN) for value in session.values()):
            cache.put(key, dict(session))
        return session


def init_app(app: Flask) -> None:
    """Install the headers, cookie flags and Flask-Login session protection on `app`."""
    from ccp.extensions import login_manager

    app.config["SESSION_COOKIE_HTTPONLY"] = True  # set here only (not in ccp.config): the baseline, not a setting
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
