"""Bearer-token authentication for the API and /metrics.

Only the `Authorization: Bearer <token>` header authenticates. A session cookie never does: the API is exempt from
CSRF protection precisely because a browser cannot attach this header on its own to a cross-site request.
"""

from __future__ import annotations

from functools import wraps

from flask import g, request

from ccp.api.errors import ApiError
from ccp.services.tokens import TokenRejected, authenticate, token_actor, token_allows

_CHALLENGE = 'Bearer realm="ccp"'
_REASONS = {
    "unknown": "the bearer token is not valid",
    "expired": "the bearer token has expired",
    "revoked": "the bearer token has been revoked",
    "inactive_user": "the bearer token's owner is deactivated",
}


def require(permission: str):
    """Decorator: the view needs a bearer token whose scope covers `permission` (read, operate or admin).

    401 (with WWW-Authenticate) when the token is missing or does not authenticate; 403 when its scope is too narrow.
    The token is put on `g.api_token` and its audit actor string on `g.actor`.
    """

    def decorator(view):
        view.required_permission = permission  # read by the OpenAPI test to document security per route

        @wraps(view)
        def wrapped(*args, **kwargs):
            token = current_token()
            if not token_allows(token, permission):
                raise ApiError(403, "insufficient_scope",
                               f"this call needs a token with the {permission!r} scope (this one has {token.scope!r})",
                               {"required": permission, "scope": token.scope})
            return view(*args, **kwargs)

        wrapped.required_permission = permission
        return wrapped

    return decorator


def current_token():
    """Authenticate the request's bearer token; raise ApiError(401) when it does not.

    Deliberately not cached on `g`: `g` lives as long as the app context, which can outlive one request.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        raise ApiError(401, "unauthenticated", "send an API token as 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": _CHALLENGE})
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "unauthenticated", "the Authorization header must be 'Bearer <token>'",
                       headers={"WWW-Authenticate": _CHALLENGE})
    try:
        token = authenticate(value.strip())
    except TokenRejected as exc:
        raise ApiError(401, "invalid_token", _REASONS[exc.reason],
                       headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'}) from None
    g.api_token = token
    g.actor = token_actor(token)
    return token
