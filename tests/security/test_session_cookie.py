"""The signed session cookie (ccp.security.TlsAwareSessionInterface): a cookie verified once is remembered, and the
shortcut keeps every refusal Flask's own check makes - expired, tampered, re-signed with a rotated secret."""

from __future__ import annotations

import time

from flask import g

from tests.web.conftest import HX


def _get(client, path: str = "/", **kwargs):
    """A request that loads its user from the session (the test keeps one app context, so one `g`, for all)."""
    g.pop("_login_user", None)
    return client.get(path, **kwargs)


def _session_cookie(client, app) -> str:
    return client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session")).value


def test_remembered_cookie_still_expires(app, client, login, monkeypatch):
    login("viewer")
    assert _get(client, headers=HX).status_code == 200
    cookie = _session_cookie(client, app)
    assert cookie in app.session_interface._verified, "the verified cookie was not remembered"
    assert _get(client, headers=HX).status_code == 200
    lifetime = app.permanent_session_lifetime.total_seconds()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + lifetime + 60)
    assert _get(client).status_code == 302, "an expired cookie was accepted from memory"


def test_tampered_cookie_is_refused_even_next_to_a_remembered_one(app, client, login):
    login("viewer")
    assert _get(client).status_code == 200
    cookie = _session_cookie(client, app)
    payload, _, signature = cookie.rpartition(".")
    forged = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    client.set_cookie(app.config.get("SESSION_COOKIE_NAME", "session"), forged)
    assert _get(client).status_code == 302
    assert forged not in app.session_interface._verified


def test_sessions_opened_from_one_cookie_do_not_share_state(app):
    """Each request gets its own session; values that could be changed in place (a list) are never remembered."""
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
    assert plain in interface._verified and with_list not in interface._verified
