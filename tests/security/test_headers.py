"""Security headers on every response (HTML, JSON, errors, static) and cookie flags, with and without TLS."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_user

PATHS = ["/login", "/api/openapi.json", "/api/instances", "/api/nope", "/healthz", "/metrics", "/no-such-page",
         "/static/ccp.css"]


@pytest.mark.parametrize("path", PATHS)
def test_baseline_headers_on_every_response(client, path):
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in csp
    assert "'unsafe-inline'" not in directives.get("default-src", "")
    assert directives["object-src"] == "'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin-when-cross-origin")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in resp.headers  # plain HTTP: never pin browsers to HTTPS


def test_hsts_only_over_tls(client):
    resp = client.get("/login", base_url="https://ccp.example.test")
    assert re.match(r"max-age=\d{7,}", resp.headers["Strict-Transport-Security"])


def test_session_cookie_flags_plain_http(client):
    resp = client.get("/login")  # the CSRF token puts something in the session
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_tls(client):
    resp = client.get("/login", base_url="https://ccp.example.test")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_pages_have_no_inline_scripts(app, client):
    """The CSP forbids inline scripts, so pages must not rely on them (they would silently not run)."""
    user, password = make_user(role="admin")
    _login(client, user.username, password)
    for path in ("/", "/login", "/admin/tokens", "/admin/audit"):
        html = client.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html, re.IGNORECASE):
            assert "src=" in tag, (path, tag)
        assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE), path  # no onclick=... handlers either


def _login(client, username, password):
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password})
