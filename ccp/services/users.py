"""Operator accounts."""

from __future__ import annotations

import re

from sqlalchemy import select

from ccp.extensions import db
from ccp.models import ROLES, User

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
MIN_PASSWORD = 10


class UserError(ValueError):
    """Invalid user data (the message says which field and why)."""


def create_user(username: str, password: str, role: str = "operator") -> User:
    """Create and commit a user with an argon2id password hash.

    Raises UserError for a bad name, a short password, an unknown role or a taken name.
    """
    if not USERNAME.match(username or ""):
        raise UserError("username: use 1-100 letters, digits, '_', '.', '@' or '-'")
    if role not in ROLES:
        raise UserError(f"role: must be one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"password: must be at least {MIN_PASSWORD} characters")
    if db.session.execute(select(User.id).filter_by(username=username)).first():
        raise UserError(f"username: {username!r} is taken")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user
