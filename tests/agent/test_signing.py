"""Signing/verification unit tests (the HTTP-level 401 tests are in test_agent_http.py)."""
import pytest

from ccp.protocol.signing import RequestVerifier, SignatureError, canonical_string, sign_request

K = b"x" * 32


def test_canonical_string_matches_design():
    assert canonical_string("100", "post", "/v1/a?b=1", b"", "n" * 16) == (
        b"100\nPOST\n/v1/a?b=1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" + b"n" * 16)


def test_roundtrip_and_rotation():
    v = RequestVerifier({"old": K, "new": b"y" * 32}, clock=lambda: 1000)
    assert v.verify("GET", "/p", b"", sign_request("old", K, "GET", "/p", b"", now=1000)) == "old"
    assert v.verify("GET", "/p", b"", sign_request("new", b"y" * 32, "GET", "/p", b"", now=1000)) == "new"


@pytest.mark.parametrize("mutate,reason", [
    (lambda h: {**h, "X-CCP-Timestamp": "990"}, "signature mismatch"),
    (lambda h: {k: v for k, v in h.items() if k != "X-CCP-Nonce"}, "missing"),
    (lambda h: {**h, "X-CCP-Key-Id": "nope"}, "unknown key"),
    (lambda h: {**h, "X-CCP-Nonce": "short"}, "malformed"),
])
def test_rejections(mutate, reason):
    v = RequestVerifier({"k": K}, clock=lambda: 1000)
    with pytest.raises(SignatureError, match=reason):
        v.verify("POST", "/p", b"{}", mutate(sign_request("k", K, "POST", "/p", b"{}", now=1000)))


def _started_at(start: float, now: float) -> RequestVerifier:
    """A verifier made (the agent started) at `start`, asked at `now`."""
    clock = [start]
    verifier = RequestVerifier({"k": K}, clock=lambda: clock[0])
    clock[0] = now
    return verifier


def test_skew_window_is_60_seconds():
    v = _started_at(900, 1000)
    v.verify("GET", "/p", b"", sign_request("k", K, "GET", "/p", b"", now=940))
    with pytest.raises(SignatureError, match="clock skew"):
        v.verify("GET", "/p", b"", sign_request("k", K, "GET", "/p", b"", now=939))
    with pytest.raises(SignatureError, match="clock skew"):
        v.verify("GET", "/p", b"", sign_request("k", K, "GET", "/p", b"", now=1061))


def test_replay_rejected_but_bad_attempt_does_not_burn_nonce():
    v = RequestVerifier({"k": K}, clock=lambda: 1000)
    headers = sign_request("k", K, "GET", "/p", b"", now=1000, nonce="a" * 32)
    with pytest.raises(SignatureError, match="mismatch"):
        v.verify("GET", "/other", b"", headers)
    v.verify("GET", "/p", b"", headers)
    with pytest.raises(SignatureError, match="nonce already used"):
        v.verify("GET", "/p", b"", headers)


def test_a_request_signed_before_the_agent_started_is_refused():
    """Nonces live in memory: one signed before a restart may have been used by the previous process, so only the
    restart margin (2 s of clock difference) is accepted from before the start."""
    v = _started_at(1000, 1005)
    with pytest.raises(SignatureError, match="before this agent started"):
        v.verify("GET", "/p", b"", sign_request("k", K, "GET", "/p", b"", now=990))  # inside the 60 s skew
    v.verify("GET", "/p", b"", sign_request("k", K, "GET", "/p", b"", now=998))
    v.verify("GET", "/p", b"", sign_request("k", K, "GET", "/p", b"", now=1004))
