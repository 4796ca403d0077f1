"""Signing a CI webhook delivery the way docs/api.md tells a CI script to (Standard Webhooks), for every test that
sends one. Written from the spec with hashlib/hmac, not with the receiver's library, so it checks the receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def signing_key(secret: str) -> bytes:
    """The HMAC key of a CCP_WEBHOOK_SECRET: `whsec_<base64>` is the decoded bytes, any other secret its text."""
    return base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()


def signature(secret: str, delivery_id: str, timestamp: int | str, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`: one entry of the webhook-signature header."""
    mac = hmac.new(signing_key(secret), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: str, body: bytes, delivery_id: str, *, timestamp: int | None = None,
                   content_type: str = "application/json") -> dict:
    """The headers of a delivery of `body` signed now (or at `timestamp`, Unix seconds) with `secret`."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": content_type, "webhook-id": delivery_id, "webhook-timestamp": str(ts),
            "webhook-signature": signature(secret, delivery_id, ts, body)}
