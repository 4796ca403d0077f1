"""UI test helpers: log in through the real login form, read the CSRF token from a page like htmx does."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_user

HX = {"HX-Request": "true"}
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client, path: str = "/") -> str:
    """The token a page carries in its csrf-token meta tag (what static/ccp.js sends as X-CSRFToken)."""
    page = client.get(path)
    match = _CSRF_META.search(page.get_data(as_text=True))
    assert match, f"no csrf meta tag on {path} ({page.status_code})"
    return match.group(1)


@pytest.fixture(autouse=True)
def fresh_g_per_request(app):
    """The `app` fixture keeps one app context (so one `g` and one db session) for the whole test, while a real
    server gives every request its own: drop what Flask-WTF and Flask-Login cache on `g` and expire loaded rows, so
    each request reads tokens, users and upgrades afresh (e.g. after the worker changed them)."""
    from flask import g, request_started

    from ccp.extensions import db

    def reset(sender, **extra):
        g.pop("csrf_token", None)
        g.pop("_login_user", None)
        db.session.expire_all()

    request_started.connect(reset, app)
    yield
    request_started.disconnect(reset, app)


@pytest.fixture
def login(client):
    """login(role="operator") -> user: logs the test client in through the login form."""

    def _login(role: str = "operator"):
        user, password = make_user(role=role)
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        response = client.post("/login", data={"username": user.username, "password": password, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return _login


@pytest.fixture
def post(client):
    """post(path, data=None, htmx=True) with the page's CSRF token sent as htmx sends it (X-CSRFToken)."""

    def _post(path: str, data: dict | None = None, htmx: bool = True, token_from: str = "/"):
        headers = {"X-CSRFToken": csrf_token(client, token_from)}
        if htmx:
            headers.update(HX)
        return client.post(path, data=data or {}, headers=headers)

    return _post
