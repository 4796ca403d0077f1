"""The signed session cookie (ccp.web.security.TlsAwareSessionInterface): a cookie verified a moment ago is not verified
again (the "cookie" entries of ccp.web.polling.PollCache), and that keeps every refusal Flask's own check makes - expired
(once the recheck bound has passed), tampered, re-signed with a rotated secret."""

from __future__ import annotations

import re
import time

from flask import g

from ccp.web.polling import poll_cache
from tests.web.conftest import HX


def _get(client, path: str = "/", **kwargs):
    """A request that loads its user (and CSRF token) from the session, as a real request does (the test keeps one
    app context, so one `g`, for all requests)."""
    g.pop("_login_user", None)
    g.pop("csrf_token", None)
    return client.get(path, **kwargs)


def _session_cookie(client, app) -> str:
    return client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session")).value


def _kept(app, cookie: str):
    return poll_cache(app).get(app.session_interface.cache_key(app, cookie))


def test_kept_cookie_still_expires(app, client, login, monkeypatch):
    login("viewer")
    assert _get(client, headers=HX).status_code == 200
    cookie = _session_cookie(client, app)
    assert _kept(app, cookie) is not None, "the verified cookie was not kept"
    assert _get(client, headers=HX).status_code == 200
    lifetime = app.permanent_session_lifetime.total_seconds()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + lifetime + 60)
    app.config["CCP_USER_RECHECK_S"] = 0  # the recheck bound has passed: Flask's own check runs
    assert _get(client).status_code == 302, "an expired cookie was accepted from memory"


def test_tampered_cookie_is_refused_even_next_to_a_kept_one(app, client, login):
    login("viewer")
    assert _get(client).status_code == 200
    cookie = _session_cookie(client, app)
    payload, _, signature = cookie.rpartition(".")
    forged = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    client.set_cookie(app.config.get("SESSION_COOKIE_NAME", "session"), forged)
    assert _get(client).status_code == 302
    assert _kept(app, forged) is None


def test_sessions_opened_from_one_cookie_do_not_share_state(app):
    """Each request gets its own session; values that could be changed in place (a list) are never kept."""
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    plain = serializer.dumps({"_user_id": "1", "_fresh": True})
    with_list = serializer.dumps({"_user_id": "1", "_flashes": [["info", "saved"]]})
    name = app.config.get("SESSION_COOKIE_NAME", "session")
    opened = []
    for cookie in (plain, plain, with_list, with_list):
        with app.test_request_context(headers={"Cookie": f"{name}={cookie}"}) as ctx:
            opened.append(interface.open_session(app, ctx.request))
    opened[0]["_user_id"] = "2"
    opened[2]["_flashes"].append(["info", "again"])
    assert opened[1]["_user_id"] == "1"
    assert opened[3]["_flashes"] == [["info", "saved"]]
    assert _kept(app, plain) is not None and _kept(app, with_list) is None


def test_a_rotated_secret_misses_every_kept_cookie(app, client, login):
    login("viewer")
    assert _get(client).status_code == 200
    app.secret_key = "rotated-" + "x" * 40  # old cookies no longer verify: logged out at once
    assert _get(client).status_code == 302


def _logout(client) -> None:
    page = _get(client, "/").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    g.pop("_login_user", None)
    g.pop("csrf_token", None)
    assert client.post("/logout", headers={"X-CSRFToken": token}).status_code == 302


def test_logout_ends_the_session_even_if_its_cookie_is_replayed(app, client, login):
    """A signed cookie stays verifiable until it expires; the user's new session epoch is what ends it."""
    login("operator")
    name = app.config.get("SESSION_COOKIE_NAME", "session")
    captured = _session_cookie(client, app)
    assert _get(client, headers=HX).status_code == 200
    _logout(client)
    client.set_cookie(name, captured)  # e.g. copied from the browser before the logout
    assert _get(client).status_code == 302
    assert _get(client, "/upgrades/1/status", headers=HX).status_code in (302, 401)  # the polled path too


def test_logout_and_a_new_password_end_the_users_other_sessions(app, db, client, login):
    from ccp.models import User

    user = login("operator")
    other = app.test_client()
    other.set_cookie(app.config.get("SESSION_COOKIE_NAME", "session"), _session_cookie(client, app))
    assert _get(other).status_code == 200
    _logout(client)
    assert _get(other).status_code == 302, "another browser of the user survived the logout"

    login_again = app.test_client()
    html = login_again.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    g.pop("_login_user", None)
    assert login_again.post("/login", data={"csrf_token": csrf, "username": user.username,
                                            "password": "correct horse battery"}).status_code == 302
    assert _get(login_again).status_code == 200
    row = db.session.get(User, user.id)
    row.set_password("a brand new passphrase")
    db.session.commit()
    assert _get(login_again).status_code == 302, "a session from before the password change survived it"
