"""`ccp token create|list|revoke`: API tokens from the command line (the value is printed once, on stdout only)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from ccp.models import TOKEN_SCOPES


@click.group("token")
def token_group() -> None:
    """Manage API tokens (Authorization: Bearer)."""


@token_group.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(TOKEN_SCOPES), required=True,
              help="read: GETs; operate: previews, upgrades, cancel; admin: instance changes and the audit log.")
@click.option("--expires-days", type=click.IntRange(0, 3650), default=90, show_default=True,
              help="Days until the token stops working (0 = never).")
@click.option("--user", "username", help="Owner; the token never grants more than the owner's role.")
@with_appcontext
def token_create(name: str, scope: str, expires_days: int, username: str | None) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from sqlalchemy import select

    from ccp.extensions import db
    from ccp.models import User
    from ccp.services.tokens import TokenError, create_token

    user = None
    if username:
        user = db.session.execute(select(User).filter_by(username=username)).scalar_one_or_none()
        if user is None:
            raise click.ClickException(f"no user {username!r}")
    try:
        token, plaintext = create_token(name, scope, user=user, expires_days=expires_days or None, actor="cli")
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    expires = token.expires_at.strftime("%Y-%m-%d") if token.expires_at else "never"
    click.echo(f"created token #{token.id} {token.name!r} (scope {token.scope}, expires {expires})", err=True)
    click.echo("copy it now, it is not shown again:", err=True)
    click.echo(plaintext)


@token_group.command("list")
@with_appcontext
def token_list() -> None:
    """List tokens: id, name, prefix, scope, owner, expiry, last use, state (never the token itself)."""
    from ccp.services.tokens import list_tokens, token_state

    rows = list_tokens()
    if not rows:
        click.echo("no tokens")
        return
    click.echo(f"{'ID':>4} {'NAME':<24} {'PREFIX':<14} {'SCOPE':<8} {'OWNER':<14} {'EXPIRES':<11} "
               f"{'LAST USED':<17} STATE")
    for t in rows:
        click.echo(f"{t.id:>4} {t.name[:24]:<24} {t.prefix + '…':<14} {t.scope:<8} "
                   f"{(t.user.username if t.user else '-')[:14]:<14} "
                   f"{t.expires_at.strftime('%Y-%m-%d') if t.expires_at else 'never':<11} "
                   f"{t.last_used_at.strftime('%Y-%m-%d %H:%M') if t.last_used_at else 'never':<17} {token_state(t)}")


@token_group.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def token_revoke(token_id: int) -> None:
    """Revoke a token by id: it stops working at once."""
    from ccp.services.tokens import get_token, revoke_token

    token = get_token(token_id)
    if token is None:
        raise click.ClickException(f"no token #{token_id}")
    revoke_token(token, actor="cli")
    click.echo(f"revoked token #{token.id} {token.name!r}")
