"""The agent's command: ``ccp agent`` in a full install, ``ccp-agent`` in the light one (the same group).

Without a sub-command it serves in the foreground; ``init`` writes a config and a key, ``check`` tests a config.
Nothing here imports the control plane, so the light ``ccp-agent`` distribution runs it without the server's
dependencies.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from ccp.agent.config import AgentConfigError, load_config
from ccp.agent.enroll import DEFAULT_CONFIG, DEFAULT_LISTEN, DEFAULT_STATE_DIR, InitError

_CONFIG_HELP = "TOML config file (default: $CCP_AGENT_CONFIG). CCP_AGENT_* variables override it."


@click.group("agent", invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help=_CONFIG_HELP)
@click.option("--listen", default=None, help="HOST:PORT to listen on (overrides the config).")
@click.pass_context
def agent_command(ctx: click.Context, config_path: str | None, listen: str | None) -> None:
    """Run the CCP agent for this host's tenants until SIGTERM/SIGINT (`init`: write a config; `check`: test it).

    The agent runs as a child of a small launcher that can restart it into a version CCP pushed and back
    (ccp.agent.launcher); `serve` runs it without the launcher (no self-update).
    """
    ctx.obj = {"config": config_path, "listen": listen}
    if ctx.invoked_subcommand:
        return
    from ccp.agent.launcher import Launcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _config(config_path, listen)
    args = (["--config", config_path] if config_path else []) + (["--listen", listen] if listen else [])
    raise SystemExit(Launcher(config.state_dir, args).run())


def _config(config_path: str | None, listen: str | None):
    env = dict(os.environ)
    if listen:
        env["CCP_AGENT_LISTEN"] = listen
    try:
        config = load_config(config_path, env)
    except AgentConfigError as exc:
        raise click.ClickException(f"agent not started: {exc}") from None
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return config


@agent_command.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help=_CONFIG_HELP)
@click.option("--listen", default=None, help="HOST:PORT to listen on (overrides the config).")
@click.pass_context
def serve_command(ctx: click.Context, config_path: str | None, listen: str | None) -> None:
    """Serve in the foreground without the launcher (what the launcher runs as its child)."""
    from ccp.agent.server import serve_forever  # the web stack is needed to serve only, not to init or check

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_forever(_config(config_path or ctx.obj.get("config"), listen or ctx.obj.get("listen")))


@agent_command.command("init")
@click.option("--instance", "instances", multiple=True, metavar="[SLUG=]DIR",
              help="A tenant's install dir (absolute), optionally named SLUG=DIR. Repeatable.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=str(DEFAULT_CONFIG),
              show_default=True, help="Config file to write.")
@click.option("--key-file", type=click.Path(dir_okay=False), default=None,
              help="Key file to write (default: the config's name with .key).")
@click.option("--key-id", default=None, help="Key id CCP will send (default: k<today's date>).")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, help="HOST:PORT the agent listens on.")
@click.option("--url", default=None, help="URL CCP reaches the agent at (default: http://<this host's name>:PORT).")
@click.option("--state-dir", default=str(DEFAULT_STATE_DIR), show_default=True, help="Journals and snapshots.")
@click.option("--project", "projects", multiple=True, metavar="SLUG=NAME",
              help="Compose project of an instance, when detection should not decide.")
@click.option("--domain", "domains", multiple=True, metavar="SLUG=DOMAIN",
              help="Public domain of an instance (default: DOMAIN in its .env).")
@click.option("--force", is_flag=True, help="Replace an existing config and key file (a new key).")
def init_command(instances, config_path, key_file, key_id, listen, url, state_dir, projects, domains, force):
    """Write an agent config for one or more instances and a new key (0600); print what to run on CCP."""
    from ccp.agent.enroll import instructions, plan_init, write_init
    from ccp.agent.runtime import compose_projects

    try:
        plan = plan_init(tuple(instances), config_path=Path(config_path), key_file=key_file and Path(key_file),
                         key_id=key_id, listen=listen, url=url, state_dir=Path(state_dir), projects=projects,
                         domains=domains, force=force, containers=compose_projects())
        key = write_init(plan)
    except InitError as exc:
        raise click.ClickException(f"nothing written: {exc}") from None
    click.echo(instructions(plan, key))


@agent_command.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help=_CONFIG_HELP)
@click.option("--ccp-url", default=None, help="CCP's base URL: compare this host's clock with CCP's.")
@click.pass_context
def check_command(ctx: click.Context, config_path: str | None, ccp_url: str | None) -> None:
    """Test the agent's config on this host (paths, permissions, compose, Docker, clock); exit 1 on a problem."""
    from ccp.agent.checks import check_agent, report

    path = config_path or ctx.obj.get("config") or os.environ.get("CCP_AGENT_CONFIG")
    if not path and not os.environ.get("CCP_AGENT_KEYS") and DEFAULT_CONFIG.exists():
        path = str(DEFAULT_CONFIG)
    text, code = report(check_agent(path, dict(os.environ), ccp_url=ccp_url))
    click.echo(text)
    raise SystemExit(code)


def main() -> None:
    """The ``ccp-agent`` console script."""
    agent_command(prog_name="ccp-agent")
