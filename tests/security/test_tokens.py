"""API tokens: stored hashed, shown once (CLI and UI), expiry, last-used time, revocation, owner's role caps scope."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from ccp.models import ApiToken, AuditEvent
from ccp.services.tokens import TokenError, TokenRejected, authenticate, create_token
from ccp.vault import hash_token
from tests.factories import make_user


def test_only_the_hash_is_stored(app, db):
    token, plaintext = create_token("ci", "read")
    row = db.session.execute(sa.text("SELECT * FROM api_tokens WHERE id = :i"), {"i": token.id}).mappings().one()
    assert plaintext not in " ".join(str(v) for v in row.values())
    assert row["token_hash"] == hash_token(plaintext)
    assert plaintext.startswith(row["prefix"]) and len(row["prefix"]) <= 12


def test_authenticate_sets_last_used_and_rejects_expired_and_revoked(app, db):
    from datetime import timedelta

    from ccp.models import utcnow
    from ccp.services.tokens import revoke_token

    token, plaintext = create_token("ci", "operate", expires_days=1)
    assert token.last_used_at is None
    assert authenticate(plaintext).id == token.id
    assert token.last_used_at is not None
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(TokenRejected) as exc:
        authenticate(plaintext)
    assert exc.value.reason == "expired"
    token.expires_at = None
    revoke_token(token, actor="test")
    with pytest.raises(TokenRejected) as exc:
        authenticate(plaintext)
    assert exc.value.reason == "revoked"
    with pytest.raises(TokenRejected):
        authenticate(plaintext + "x")


@pytest.mark.parametrize("kwargs, field", [
    ({"name": "", "scope": "read"}, "name"),
    ({"name": "ok", "scope": "root"}, "scope"),
    ({"name": "ok", "scope": "read", "expires_days": -1}, "expires_days"),
    ({"name": "ok", "scope": "read", "expires_days": 99999}, "expires_days"),
])
def test_bad_token_data_is_refused(app, db, kwargs, field):
    with pytest.raises(TokenError, match=field):
        create_token(**kwargs)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_owner_role_caps_the_scope(app, db):
    viewer, _ = make_user(role="viewer")
    with pytest.raises(TokenError, match="scope"):
        create_token("too-wide", "operate", user=viewer)
    operator, _ = make_user(role="operator")
    _token, plaintext = create_token("ops", "operate", user=operator)
    operator.active = False
    db.session.commit()
    with pytest.raises(TokenRejected) as exc:
        authenticate(plaintext)
    assert exc.value.reason == "inactive_user"


def test_cli_create_prints_once_list_hides_it_revoke_works(app, app_env):
    from ccp.cli import main

    make_user("alice", role="admin")
    runner = app.test_cli_runner(mix_stderr=False) if _has_mix_stderr() else app.test_cli_runner()
    created = runner.invoke(main, ["token", "create", "deploy-bot", "--scope", "operate", "--expires-days", "7",
                                   "--user", "alice"], env=app_env)
    assert created.exit_code == 0, created.output
    plaintext = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ccp_[A-Za-z0-9_-]{40,}", plaintext)
    token = authenticate(plaintext)
    assert token.scope == "operate" and token.user.username == "alice" and token.expires_at is not None
    listed = runner.invoke(main, ["token", "list"], env=app_env)
    assert "deploy-bot" in listed.output and plaintext not in listed.output
    revoked = runner.invoke(main, ["token", "revoke", str(token.id)], env=app_env)
    assert revoked.exit_code == 0
    with pytest.raises(TokenRejected):
        authenticate(plaintext)
    bad = runner.invoke(main, ["token", "create", "x", "--scope", "admin", "--user", "nobody"], env=app_env)
    assert bad.exit_code != 0 and "nobody" in bad.output + (bad.stderr if _has_mix_stderr() else "")


def _has_mix_stderr() -> bool:
    import inspect

    from click.testing import CliRunner

    return "mix_stderr" in inspect.signature(CliRunner.__init__).parameters


def _login(client, username, password):
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    assert client.post("/login", data={"csrf_token": csrf, "username": username,
                                       "password": password}).status_code == 302


def _csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_ui_create_shows_token_once_then_revoke(app, db, client):
    admin, password = make_user(role="admin")
    _login(client, admin.username, password)
    page = client.get("/admin/tokens")
    assert page.status_code == 200
    resp = client.post("/admin/tokens", data={"csrf_token": _csrf_of(page.get_data(as_text=True)), "name": "grafana",
                                              "scope": "read", "expires_days": "30"})
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    plaintext = re.search(r'class="token-value">(ccp_[^<]+)<', html).group(1)
    token = authenticate(plaintext)
    assert token.user_id == admin.id and token.scope == "read"
    again = client.get("/admin/tokens").get_data(as_text=True)
    assert plaintext not in again and "grafana" in again and token.prefix in again
    with client.session_transaction() as sess:
        assert plaintext not in repr(dict(sess))  # not flashed through the (signed, readable) session cookie
    revoke = client.post(f"/admin/tokens/{token.id}/revoke", data={"csrf_token": _csrf_of(again)})
    assert revoke.status_code == 302
    with pytest.raises(TokenRejected):
        authenticate(plaintext)
    actions = db.session.scalars(sa.select(AuditEvent.action).filter_by(actor=f"user:{admin.username}")).all()
    assert sorted(actions) == ["token.create", "token.revoke"]


def test_ui_invalid_token_form_is_422_and_saves_nothing(app, db, client):
    admin, password = make_user(role="admin")
    _login(client, admin.username, password)
    csrf = _csrf_of(client.get("/admin/tokens").get_data(as_text=True))
    resp = client.post("/admin/tokens", data={"csrf_token": csrf, "name": "x", "scope": "root", "expires_days": "5"})
    assert resp.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_admin_pages_are_admin_only(app, db, client, role):
    user, password = make_user(role=role)
    _login(client, user.username, password)
    assert client.get("/admin/tokens").status_code == 403
    assert client.get("/admin/audit").status_code == 403
    assert client.post("/admin/tokens", data={"name": "x", "scope": "admin"}).status_code in (400, 403)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_admin_pages_need_login(client):
    assert client.get("/admin/tokens").status_code == 302
    assert client.get("/admin/audit").status_code == 302
