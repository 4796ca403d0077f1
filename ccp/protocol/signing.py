"""HMAC request signing shared by the agent (verify) and CCP's client (sign) -- one implementation for both.

Canonical string (DESIGN.md, agent protocol v1)::

    timestamp \\n METHOD \\n path[?query] \\n hex(sha256(body)) \\n nonce

signed with HMAC-SHA256 under the key named by ``X-CCP-Key-Id``; the hex digest goes in ``X-CCP-Signature``.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time

HEADER_KEY_ID = "X-CCP-Key-Id"
HEADER_TIMESTAMP = "X-CCP-Timestamp"
HEADER_NONCE = "X-CCP-Nonce"
HEADER_SIGNATURE = "X-CCP-Signature"
MAX_SKEW_S = 60
RESTART_MARGIN_S = 2.0  # clock difference tolerated for requests signed just before the agent started
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class SignatureError(Exception):
    """The request is not validly signed; the message says why (it never contains key material)."""


def canonical_string(timestamp: str, method: str, path: str, body: bytes, nonce: str) -> bytes:
    """Return the exact bytes that are signed."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{timestamp}\n{method.upper()}\n{path}\n{digest}\n{nonce}".encode()


def sign_request(key_id: str, key: bytes, method: str, path: str, body: bytes, now: float | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """Return the four X-CCP-* headers signing this request. ``path`` includes any query string."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_hex(16)
    mac = hmac.new(key, canonical_string(timestamp, method, path, body, nonce), hashlib.sha256).hexdigest()
    return {HEADER_KEY_ID: key_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce, HEADER_SIGNATURE: mac}


class RequestVerifier:
    """Verifies signed requests: known key (any of the active ones), skew <= 60 s, unused nonce, matching MAC.

    Thread-safe. Nonces are remembered for twice the skew window (after that the timestamp check rejects them).
    They are held in memory only, so a request signed before this verifier was made (an agent restart) is refused:
    the previous process may have consumed its nonce. `restart_margin_s` tolerates that much clock difference
    between CCP and the agent right after a start (a request refused for it is simply sent again, freshly signed).
    """

    def __init__(self, keys: dict[str, bytes], *, max_skew_s: int = MAX_SKEW_S, clock=time.time,
                 max_nonces: int = 200_000, restart_margin_s: float = RESTART_MARGIN_S):
        if not keys:
            raise ValueError("at least one key is required")
        self._keys = dict(keys)
        self._skew = max_skew_s
        self._clock = clock
        self._max_nonces = max_nonces
        self._seen: dict[str, float] = {}
        self._not_before = clock() - restart_margin_s
        self._lock = threading.Lock()

    def verify(self, method: str, path: str, body: bytes, headers) -> str:
        """Return the key id that signed the request; raises SignatureError otherwise (nonce not consumed)."""
        key_id = headers.get(HEADER_KEY_ID)
        timestamp = headers.get(HEADER_TIMESTAMP)
        nonce = headers.get(HEADER_NONCE)
        signature = headers.get(HEADER_SIGNATURE)
        if not (key_id and timestamp and nonce and signature):
            raise SignatureError("missing signature headers")
        key = self._keys.get(key_id)
        if key is None:
            raise SignatureError("unknown key id")
        if not timestamp.isdigit() or not _NONCE_RE.match(nonce):
            raise SignatureError("malformed timestamp or nonce")
        now = self._clock()
        if abs(now - int(timestamp)) > self._skew:
            raise SignatureError(f"timestamp outside the allowed {self._skew} s clock skew")
        expected = hmac.new(key, canonical_string(timestamp, method, path, body, nonce), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("signature mismatch")
        if int(timestamp) < self._not_before:
            raise SignatureError("signed before this agent started (a request from before a restart cannot be "
                                 "replayed); sign it again")
        with self._lock:
            if nonce in self._seen:
                raise SignatureError("nonce already used")
            if len(self._seen) >= self._max_nonces:
                self._prune(now)
                if len(self._seen) >= self._max_nonces:
                    raise SignatureError("too many requests in the replay window")
            self._seen[nonce] = now + 2 * self._skew
        return key_id

    def _prune(self, now: float) -> None:
        self._seen = {n: exp for n, exp in self._seen.items() if exp > now}
