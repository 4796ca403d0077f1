"""API tokens: create (the plaintext is returned once, only its SHA-256 is stored), list, revoke, authenticate.

A token's scope is read < operate < admin. A token owned by a user never grants more than that user's role, and stops
working when the user is deactivated or deleted.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from ccp.extensions import db
from ccp.models import TOKEN_SCOPES, ApiToken, User, as_utc, iso_utc, utcnow
from ccp.vault import hash_token, new_api_token

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,99}$")
MAX_EXPIRES_DAYS = 3650
PREFIX_LEN = 12  # "ccp_" + 8 characters: enough to recognise a token in a list, far too little to guess it
LAST_USED_RESOLUTION_S = 60  # write last_used_at at most once a minute per token
_SCOPE_FOR_ROLE = {"viewer": "read", "operator": "operate", "admin": "admin"}


class TokenError(ValueError):
    """Invalid token data (the message names the field and says why)."""


class TokenRejected(Exception):
    """A presented bearer token does not authenticate; `reason` is one of unknown, expired, revoked, inactive_user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def create_token(name: str, scope: str, *, user: User | None = None, expires_days: int | None = None,
                 actor: str = "system") -> tuple[ApiToken, str]:
    """Create a token and return (row, plaintext). The plaintext is never stored; show it once.

    `expires_days` None or 0 means no expiry. Raises TokenError (nothing saved) for a bad name, an unknown scope,
    a scope above the owner's role or an out-of-range expiry.
    """
    name = (name or "").strip()
    if not NAME.match(name):
        raise TokenError("name: use 1-100 letters, digits, spaces, '_', '.', '@' or '-'")
    if scope not in TOKEN_SCOPES:
        raise TokenError(f"scope: must be one of {', '.join(TOKEN_SCOPES)}")
    if user is not None and not user.can(scope):
        raise TokenError(f"scope: user {user.username!r} ({user.role}) cannot hold a {scope!r} token")
    if expires_days is not None and (isinstance(expires_days, bool) or not isinstance(expires_days, int)
                                     or not 0 <= expires_days <= MAX_EXPIRES_DAYS):
        raise TokenError(f"expires_days: must be a whole number from 0 (never) to {MAX_EXPIRES_DAYS}")
    plaintext = new_api_token()
    token = ApiToken(
        name=name, prefix=plaintext[:PREFIX_LEN], token_hash=hash_token(plaintext), scope=scope,
        user_id=user.id if user is not None else None,
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    db.session.add(token)
    db.session.commit()
    _audit(actor, "token.create", token, {"scope": scope, "expires_at": iso_utc(token.expires_at)})
    return token, plaintext


def list_tokens() -> list[ApiToken]:
    """All tokens, newest first (revoked and expired ones included, flagged by token_state)."""
    return list(db.session.execute(select(ApiToken).order_by(ApiToken.id.desc())).scalars())


def get_token(token_id: int) -> ApiToken | None:
    """The token with this id, or None."""
    return db.session.get(ApiToken, token_id)


def revoke_token(token: ApiToken, *, actor: str = "system") -> ApiToken:
    """Revoke a token (idempotent: revoking twice keeps the first revocation time)."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
        _audit(actor, "token.revoke", token, {})
    return token


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """'active', 'expired' or 'revoked'."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and as_utc(token.expires_at) <= (now or utcnow()):
        return "expired"
    return "active"


def authenticate(plaintext: str) -> ApiToken:
    """Find the active token for a presented bearer value and note its use; raise TokenRejected otherwise."""
    if not plaintext or len(plaintext) > 200:
        raise TokenRejected("unknown")
    token = db.session.execute(select(ApiToken).filter_by(token_hash=hash_token(plaintext))).scalar_one_or_none()
    if token is None:
        raise TokenRejected("unknown")
    state = token_state(token)
    if state != "active":
        raise TokenRejected(state)
    if token.user_id is not None and (token.user is None or not token.user.active):
        raise TokenRejected("inactive_user")
    now = utcnow()
    if token.last_used_at is None or (now - as_utc(token.last_used_at)).total_seconds() >= LAST_USED_RESOLUTION_S:
        token.last_used_at = now
        db.session.commit()
    return token


def token_allows(token: ApiToken, permission: str) -> bool:
    """Whether the token (and its owner, if any) may do something needing `permission` (read/operate/admin)."""
    if not token.allows(permission):
        return False
    return token.user is None or token.user.can(permission)


def token_actor(token: ApiToken) -> str:
    """The audit actor string for a token: token:<name>#<id>."""
    return f"token:{token.name}#{token.id}"


def max_scope_for(user: User) -> str:
    """The widest scope a user's role allows them to hold."""
    return _SCOPE_FOR_ROLE.get(user.role, "read")


def _audit(actor: str, action: str, token: ApiToken, detail: dict) -> None:
    from ccp.services.audit import record

    record(actor, action, target=token_actor(token), detail=detail)
