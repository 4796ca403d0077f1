"""Admin commands: `ccp user ...`, `ccp instance ...` (incl. `instance secrets`), `ccp rotate-encryption-key`."""

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


@instance_group.group("secrets")
def secrets_group() -> None:
    """Secrets CCP holds (encrypted) for a CCP-provisioned tenant: list names, set from stdin, unset.

    Registered tenants keep their secrets on their host; CCP holds none of them.
    """


@secrets_group.command("list")
@click.argument("slug")
@with_appcontext
def secrets_list(slug: str) -> None:
    """Show the set's secret names and whether each is held (never a value)."""
    inst = _instance(slug)
    if inst.is_registered:
        click.echo(f"{slug} is a registered tenant: its secrets stay on its host; CCP holds none")
        return
    tset = _template_set(inst)
    held = set(inst.secret_names())
    click.echo(f"{'NAME':<32} STATE")
    for name in sorted(tset.secret_keys | held):
        if name in held:
            state = "set" if name in tset.secret_keys else f"set (not a secret of set {tset.name})"
        else:
            state = "missing (optional)" if name in tset.optional_secret_keys else "missing (required)"
        click.echo(f"{name:<32} {state}")


@secrets_group.command("set", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@click.argument("slug")
@click.argument("key")
@click.pass_context
@with_appcontext
def secrets_set(ctx: click.Context, slug: str, key: str) -> None:
    """Set one secret, reading its value from standard input (one trailing newline is dropped).

    Example: `printf '%s' "$VALUE" | ccp instance secrets set acme SMTP_PASSWORD`. On a terminal the value is
    asked for without echo. Values never go on the command line, where `ps` and shell history would keep them.
    """
    if ctx.args:  # refused without echoing them: a value given here would be the secret itself
        raise click.UsageError("the value is read from standard input, never from the command line "
                               "(shell history and `ps` would keep it)")
    inst = _instance(slug)
    if inst.is_registered:  # the service refuses too; saying so first spares the operator typing a value
        raise click.ClickException(f"{slug} is a registered tenant: its secrets stay on its host; CCP holds none")
    tset = _template_set(inst)
    if key not in tset.secret_keys:
        raise click.ClickException(f"{key!r} is not a secret of template set {tset.name}; "
                                   f"known: {', '.join(sorted(tset.secret_keys)) or 'none'}")
    if sys.stdin.isatty():
        value = click.prompt(f"{key}", hide_input=True, confirmation_prompt=True, default="", show_default=False)
    else:
        value = click.get_text_stream("stdin").read()
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value:
        raise click.ClickException(f"empty value for {key}: nothing changed (use `unset` to remove a secret)")
    _save_secrets(inst, inst.decrypted_secrets() | {key: value}, "instance.secret.set", key)
    click.echo(f"{slug}: {key} set")


@secrets_group.command("unset")
@click.argument("slug")
@click.argument("key")
@with_appcontext
def secrets_unset(slug: str, key: str) -> None:
    """Remove one held secret (a required one must be set again before .env can be rendered)."""
    inst = _instance(slug)
    held = inst.decrypted_secrets()
    if key not in held:
        raise click.ClickException(f"{slug} holds no secret {key!r}; held: {', '.join(sorted(held)) or 'none'}")
    tset = _template_set(inst)
    _save_secrets(inst, {k: v for k, v in held.items() if k != key}, "instance.secret.unset", key)
    click.echo(f"{slug}: {key} removed")
    if key in tset.secret_keys - tset.optional_secret_keys:
        click.echo(f"note: {key} is required by template set {tset.name}; previews fail until it is set again",
                   err=True)


def _instance(slug: str):
    from sqlalchemy import select

    from ccp.models import Instance

    inst = db.session.execute(select(Instance).filter_by(slug=slug)).scalar_one_or_none()
    if inst is None:
        raise click.ClickException(f"no instance {slug!r}")
    return inst


def _template_set(inst):
    from flask import current_app

    from ccp.rendering.sets import TemplateSetError, load_template_set

    settings = current_app.config["CCP"]
    try:
        return load_template_set(inst.template_set, (settings.template_sets_dir,) if settings.template_sets_dir else ())
    except TemplateSetError as exc:
        raise click.ClickException(f"{inst.slug}: {exc}") from None


def _save_secrets(inst, secrets: dict[str, str], action: str, key: str) -> None:
    """Store through the instance service (validation, registered tenants refused, encryption, audit), then record
    which secret changed: the service's own audit event names no secret. Names only, never values."""
    from ccp.services.audit import record
    from ccp.services.instances import InstanceBusy, InstanceError, update_instance

    try:
        update_instance(inst, {"secrets": secrets}, actor="cli")
    except (InstanceError, InstanceBusy) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    record("cli", action, instance=inst, detail={"key": key})


@click.command("rotate-encryption-key")
@with_appcontext
def rotate_key_command() -> None:
    """Re-encrypt every stored secret under the first key of CCP_ENCRYPTION_KEYS.

    Rotation: prepend a new key to CCP_ENCRYPTION_KEYS (comma-separated), run this, then remove the old key.
    """
    from ccp.services.instances import rotate_encryption
    from ccp.services.receivers import rotate_vault
    from ccp.vault import get_vault

    count = rotate_encryption() + rotate_vault(get_vault())  # tenants' secrets, then receivers' keys and passwords
    click.echo(f"re-encrypted {count} stored secret(s) under the newest key")


def _parse_pairs(pairs) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--var")
        out[key] = value
    return out
