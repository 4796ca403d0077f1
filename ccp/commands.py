"""Admin commands: `ccp user ...`, `ccp instance ...`, `ccp rotate-encryption-key`."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from ccp.extensions import db


@click.group("user")
def user_group() -> None:
    """Manage operator accounts."""


@user_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), default="operator", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@with_appcontext
def user_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user (asks for the password unless --password-stdin)."""
    from ccp.services.users import UserError, create_user

    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        user = create_user(username, password, role)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {user.username} ({user.role})")


@click.group("instance")
def instance_group() -> None:
    """Manage tenant instances."""


@instance_group.command("add")
@click.argument("slug")
@click.option("--name", help="Display name (default: the slug).")
@click.option("--domain", default="", help="Public domain of the tenant.")
@click.option("--driver", type=click.Choice(["remote", "local"]), default="remote", show_default=True)
@click.option("--agent-url", help="Base URL of the tenant's agent (remote driver).")
@click.option("--agent-key-id", help="Key id the agent knows CCP's key by.")
@click.option("--agent-key-stdin", is_flag=True, help="Read the agent key from standard input.")
@click.option("--install-dir", help="Install dir on the host (required for the local driver).")
@click.option("--project", "compose_project", help="docker compose project name (default: the slug).")
@click.option("--registered", is_flag=True, help="Installed by the tenant's own script: CCP never holds its .env.")
@click.option("--tag", "image_tag", help="Current image tag.")
@click.option("--template-set", default="default", show_default=True)
@click.option("--health-url", "health_urls", multiple=True, help="HTTP URL that must answer 2xx/3xx (repeatable).")
@click.option("--var", "vars_", multiple=True, metavar="KEY=VALUE", help="Non-secret template value (repeatable).")
@with_appcontext
def instance_add(slug, name, domain, driver, agent_url, agent_key_id, agent_key_stdin, install_dir,
                 compose_project, registered, image_tag, template_set, health_urls, vars_) -> None:
    """Register a tenant instance."""
    from ccp.services.instances import InstanceError, create_instance

    data = {
        "slug": slug, "name": name or slug, "domain": domain, "driver": driver, "agent_url": agent_url,
        "agent_key_id": agent_key_id, "install_dir": install_dir, "compose_project": compose_project or slug,
        "is_registered": registered, "image_tag": image_tag, "template_set": template_set,
        "health_urls": list(health_urls), "vars": _parse_pairs(vars_),
    }
    if agent_key_stdin:
        data["agent_key"] = sys.stdin.readline().strip()
    try:
        inst = create_instance(data, actor="cli")
    except InstanceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added instance {inst.slug} (id {inst.id})")


@instance_group.command("list")
@with_appcontext
def instance_list() -> None:
    """List instances: slug, tag, driver, agent."""
    from sqlalchemy import select

    from ccp.models import Instance

    rows = db.session.execute(select(Instance).order_by(Instance.slug)).scalars().all()
    if not rows:
        click.echo("no instances")
        return
    click.echo(f"{'SLUG':<24} {'TAG':<16} {'DRIVER':<7} {'REG':<4} AGENT")
    for inst in rows:
        click.echo(f"{inst.slug:<24} {inst.image_tag or '-':<16} {inst.driver:<7} "
                   f"{'yes' if inst.is_registered else 'no':<4} {inst.agent_url or inst.install_dir or '-'}")


@click.command("rotate-encryption-key")
@with_appcontext
def rotate_key_command() -> None:
    """Re-encrypt every stored secret under the first key of CCP_ENCRYPTION_KEYS.

    Rotation: prepend a new key to CCP_ENCRYPTION_KEYS (comma-separated), run this, then remove the old key.
    """
    from ccp.services.instances import rotate_encryption

    count = rotate_encryption()
    click.echo(f"re-encrypted {count} stored secret(s) under the newest key")


def _parse_pairs(pairs) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--var")
        out[key] = value
    return out
