"""API test helpers: tokens of each scope and state, and a JSON client that sends them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ccp.models import utcnow


@pytest.fixture
def make_token(app, db):
    """make_token(scope, state="active") -> plaintext bearer value; state is active, expired or revoked."""
    from ccp.services.tokens import create_token, revoke_token

    def _make(scope: str = "read", state: str = "active", user=None) -> str:
        token, plaintext = create_token(f"{scope}-{state}", scope, user=user, actor="test")
        if state == "expired":
            token.expires_at = utcnow() - timedelta(seconds=1)
            db.session.commit()
        elif state == "revoked":
            revoke_token(token, actor="test")
        return plaintext

    return _make


@pytest.fixture
def api(client):
    """api(method, path, token=None, json=..., data=..., headers=...) -> response (bearer header when token)."""

    def _call(method: str, path: str, token: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return client.open(path, method=method, headers=headers, **kwargs)

    return _call


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """The response has `status` and the one error shape (and `code`, when given); returns the error object."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    body = resp.get_json()
    assert body is not None, resp.get_data(as_text=True)[:200]
    err = body["error"]
    assert set(err) == {"code", "message", "details"}
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and isinstance(err["details"], dict)
    if code is not None:
        assert err["code"] == code, err
    return err
