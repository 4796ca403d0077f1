"""``ccp agent``: run the agent in the foreground (the lead wires ``agent_command`` into the ``ccp`` group)."""
from __future__ import annotations

import logging

import click

from ccp.agent.config import AgentConfigError, load_config
from ccp.agent.server import serve_forever


@click.command("agent")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config file (default: $CCP_AGENT_CONFIG). CCP_AGENT_* variables override it.")
@click.option("--listen", default=None, help="HOST:PORT to listen on (overrides the config).")
def agent_command(config_path: str | None, listen: str | None) -> None:
    """Run the CCP agent for this host's tenants until SIGTERM/SIGINT."""
    import os

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = dict(os.environ)
    if listen:
        env["CCP_AGENT_LISTEN"] = listen
    try:
        config = load_config(config_path, env)
    except AgentConfigError as exc:
        raise click.ClickException(f"agent not started: {exc}") from None
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    serve_forever(config)
