"""What every provider shares: the parsed shape of a delivery, the secret it is checked with, and the checks.

A delivery is a *hint*, never an order: a provider module turns its body into `Hint`s (a repository and a tag
and/or digest it says changed) and the decision service asks the registry again before anything happens. Every
comparison of a signature or token is constant-time (`hmac.compare_digest`); a failed check raises `Unauthorized`,
and the caller stores nothing for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Mapping

from ccp import rules

DIGEST = rules.DIGEST
# Repository names as providers send them: registry paths (a-z 0-9 . _ - /, maybe host:port) or forge "Owner/Repo".
REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,254}")
DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,80}")
STANDARD_TOLERANCE_S = 300  # Standard Webhooks: a webhook-timestamp further off than this is stale
MANIFEST_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
})


class IntakeError(Exception):
    """A delivery CCP refuses; `status` and `code` are what the API answers."""

    status, code = 400, "invalid_payload"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(IntakeError):
    """Unsigned, forged or stale: answered 401, nothing stored."""

    status, code = 401, "bad_signature"


class BadPayload(IntakeError):
    """Signed, but not a body this provider sends: answered 400 and kept as `rejected`."""


@dataclass(frozen=True)
class Hint:
    """One thing a delivery says changed: `repository` (lower-cased) with a tag, a digest, or both."""

    repository: str
    tag: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class Parsed:
    """A delivery's body as CCP reads it: the event name, its hints, and, without hints, why it is no release;
    `delivery_id` is the provider's own id of the delivery when it sends one (a repeat of it is a replay).
    `keep` False: noise not worth a row (a registry's pull and layer notifications, which a 2.x registry cannot
    leave out): acknowledged, not stored."""

    event: str
    hints: tuple[Hint, ...] = ()
    ignored: str | None = None
    delivery_id: str | None = None
    keep: bool = True


@dataclass(frozen=True)
class Inbound:
    """One HTTP delivery as received: headers, the raw body, and the secret from the URL path (Docker Hub, Quay)."""

    headers: Mapping[str, str]
    body: bytes
    path_secret: str | None = None


@dataclass(frozen=True)
class Secret:
    """What a receiver verifies with: an HMAC key (bytes) or the SHA-256 (hex) of a token compared as sent."""

    hmac_key: bytes | None = None
    token_sha256: str | None = None


def token_sha256(token: str) -> str:
    """The hex SHA-256 a token is stored as (tokens CCP makes carry 256 bits: no dictionary attack to slow down)."""
    return hashlib.sha256(token.encode()).hexdigest()


def header(headers: Mapping[str, str], name: str) -> str:
    """A request header, stripped ('' when absent); case-insensitive for plain dicts too."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), "")
    return str(value).strip()


def check_token(secret: Secret, presented: str, what: str) -> None:
    """`presented` must be the receiver's token (compared as SHA-256 digests, in constant time)."""
    if not secret.token_sha256:
        raise Unauthorized("this receiver has no token configured")
    if not presented or not hmac.compare_digest(token_sha256(presented), secret.token_sha256):
        raise Unauthorized(f"{what} does not match this receiver's secret")


def check_bearer(secret: Secret, headers: Mapping[str, str]) -> None:
    """An `Authorization` header holding the receiver's token, alone or as `Bearer <token>`."""
    value = header(headers, "Authorization")
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    check_token(secret, value, "the Authorization header")


def check_hex_hmac(secret: Secret, body: bytes, presented: str, prefix: str, what: str) -> None:
    """`presented` must be `prefix` + hex HMAC-SHA256 of the raw body with the receiver's key."""
    if not secret.hmac_key:
        raise Unauthorized("this receiver has no signing secret configured")
    if not presented:
        raise Unauthorized(f"missing {what}: sign the body with HMAC-SHA256 and the receiver's secret")
    expected = prefix + hmac.new(secret.hmac_key, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), presented.lower().encode()):
        raise Unauthorized(f"{what} does not match the HMAC-SHA256 of the body with this receiver's secret")


def check_standard_webhooks(secret: Secret, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """A Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of
    "<id>.<timestamp>.<body>">, several allowed); returns the webhook-id. Stale (> 5 min either way) is refused."""
    if not secret.hmac_key:
        raise Unauthorized("this receiver has no signing token configured")
    msg_id, stamp, sigs = (header(headers, n) for n in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and sigs):
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature")
    if not re.fullmatch(r"[1-9][0-9]{0,11}", stamp):
        raise Unauthorized("webhook-timestamp must be the Unix time in whole seconds")
    if abs(int(stamp) - (time.time() if now is None else now)) > STANDARD_TOLERANCE_S:
        raise Unauthorized(f"webhook-timestamp is more than {STANDARD_TOLERANCE_S} s off CCP's clock")
    expected = hmac.new(secret.hmac_key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    for entry in sigs.split():
        version, _, value = entry.partition(",")
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if version == "v1" and hmac.compare_digest(expected, given):
            return msg_id
    raise Unauthorized("no webhook-signature matches the HMAC-SHA256 of '<id>.<timestamp>.<body>'")


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: `whsec_<base64>` is the decoded bytes, anything else its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        encoded = secret[6:]
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    return secret.encode()


def repository_of(value: object) -> str | None:
    """A provider's repository name, lower-cased, or None when it is missing or not a plain name."""
    if isinstance(value, str) and REPOSITORY.fullmatch(value.strip()):
        return value.strip().lower()
    return None


def tag_of(value: object) -> str | None:
    """An image tag, or None when `value` is empty or not a valid tag (e.g. a git tag with a '/')."""
    if isinstance(value, str) and value:
        try:
            return rules.check_tag(value)
        except rules.RuleError:
            return None
    return None


def digest_of(value: object) -> str | None:
    """A content digest (sha256:<64 hex> or sha512:<128 hex>), or None."""
    return value if isinstance(value, str) and DIGEST.fullmatch(value) else None


def delivery_id_of(value: str) -> str | None:
    """A provider's delivery id if it is a plain id (used for replay protection), else None."""
    return value if value and DELIVERY_ID.fullmatch(value) else None


def tag_ref(ref: object) -> str | None:
    """`refs/tags/<name>` -> name ('' for other refs, None when not a string)."""
    if not isinstance(ref, str):
        return None
    return ref[len("refs/tags/"):] if ref.startswith("refs/tags/") else ""


def obj(value: object) -> dict:
    """`value` when it is a JSON object, else {} (providers omit fields freely; a wrong type is no release)."""
    return value if isinstance(value, dict) else {}


def storable(text: str, limit: int = 500) -> str:
    """`text` safe for any text column: lone surrogates and control characters (NUL included, which PostgreSQL
    refuses) become escapes; cut to `limit`. Payload-derived words reach event names and reasons through here."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)[:limit]


def not_an_image_tag(name: object) -> str:
    """The reason for a git tag that cannot be an image tag."""
    return f"tag {ascii(name)[:80]} is not a valid image tag"


def tagged(done, repo: str | None, name: object, what: str = "repository") -> Parsed:
    """A forge event's answer for git tag `name` of `repo`: one hint, or ignored (no `what` named, not an image tag).
    `done(hints, ignored)` builds the provider's Parsed."""
    if repo is None:
        return done(ignored=f"the delivery names no {what}")
    tag = tag_of(name)
    return done([Hint(repo, tag)]) if tag else done(ignored=not_an_image_tag(name))


def published_release(done, repo: str | None, release: object, action: object) -> Parsed:
    """A `release` event as GitHub and Gitea/Forgejo send it (same payload): only a published, non-draft release."""
    release = obj(release)
    if action != "published":
        return done(ignored=f"release {action}: only published releases are releases")
    if release.get("draft"):
        return done(ignored="a draft release")
    return tagged(done, repo, release.get("tag_name"))
