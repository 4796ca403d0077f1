"""Permission checks for UI views. Templates may hide buttons, but only these checks decide."""

from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required


def requires(permission: str):
    """Decorate a view: the user must be logged in (else redirect to login) and hold `permission` (else 403)."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.can(permission):
                abort(403, description=f"Your role ({current_user.role}) may not do this: it needs '{permission}'.")
            return view(*args, **kwargs)

        return login_required(wrapped)

    return decorate


def ui_actor() -> str:
    """The audit actor for the logged-in user: `user:<name>` (see docs/api.md "Audit log" for every actor form)."""
    return f"user:{current_user.username}"
