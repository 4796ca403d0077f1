"""Login: argon2id verify, CSRF-protected form, failed attempts rate-limited per username+IP (429), fresh session."""

from __future__ import annotations

import re

from flask import session

from tests.factories import make_user


def _csrf(client) -> str:
    html = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _post(client, username, password, ip="10.0.0.1", token=None):
    return client.post("/login", data={"csrf_token": token or _csrf(client), "username": username,
                                        "password": password}, environ_base={"REMOTE_ADDR": ip})


def test_login_works_and_stores_argon2id(app, client):
    user, password = make_user(role="viewer")
    assert user.password_hash.startswith("$argon2id$")
    resp = _post(client, user.username, password)
    assert resp.status_code == 302
    assert client.get("/").status_code == 200


def test_wrong_password_and_unknown_user_look_the_same(app, client):
    user, _ = make_user()
    wrong = _post(client, user.username, "definitely wrong")
    unknown = _post(client, "nobody-here", "definitely wrong")
    assert wrong.status_code == unknown.status_code == 401
    assert "Unknown user or wrong password" in wrong.get_data(as_text=True)
    assert "Unknown user or wrong password" in unknown.get_data(as_text=True)


def test_login_form_needs_csrf_token(app, client):
    user, password = make_user()
    resp = client.post("/login", data={"username": user.username, "password": password})
    assert resp.status_code in (400, 403)
    assert client.get("/").status_code == 302  # still not logged in


def test_failed_attempts_are_rate_limited_per_username_and_ip(app, client):
    app.config["CCP_LOGIN_MAX_FAILURES"] = 3
    user, password = make_user()
    for _ in range(3):
        assert _post(client, user.username, "wrong password!", ip="10.0.0.7").status_code == 401
    blocked = _post(client, user.username, password, ip="10.0.0.7")  # even the right password is refused now
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert client.get("/").status_code == 302
    # Another IP (or another username from this IP) is not affected.
    assert _post(client, user.username, password, ip="10.0.0.8").status_code == 302


def test_counter_lives_in_redis_with_expiry(app, client):
    from ccp.extensions import get_redis

    app.config["CCP_LOGIN_WINDOW_S"] = 120
    user, _ = make_user()
    _post(client, user.username, "wrong password!", ip="10.0.0.9")
    ns = app.config["CCP"].queue_name
    keys = get_redis().keys(f"ccp:{ns}:login-fail:*")
    assert len(keys) == 1
    assert 0 < get_redis().ttl(keys[0]) <= 120
    assert user.username.encode() not in keys[0]  # usernames are hashed, never stored in Redis


def test_session_is_renewed_at_login(app, client):
    user, password = make_user()
    with client.session_transaction() as sess:
        sess["planted"] = "by-an-attacker"
    token = _csrf(client)
    with client:
        _post(client, user.username, password, token=token)
        client.get("/")
        assert "planted" not in session
        assert session.get("_user_id") == str(user.id)


def test_open_redirect_refused(app, client):
    user, password = make_user()
    resp = client.post("/login?next=//evil.example/x", data={"csrf_token": _csrf(client), "username": user.username,
                                                            "password": password})
    assert resp.status_code == 302 and "evil.example" not in resp.headers["Location"]


def test_deactivated_user_session_ends(app, db, client):
    user, password = make_user()
    _post(client, user.username, password)
    assert client.get("/").status_code == 200
    user.active = False
    db.session.commit()
    assert client.get("/").status_code == 302
