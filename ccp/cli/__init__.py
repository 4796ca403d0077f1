"""The `ccp` command: Flask's own commands (db, run, shell, routes) plus worker, web, demo, user, instance,
render, agent, token."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from ccp.config import ConfigError


def _make_app():
    from ccp.app import create_app

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"ccp: configuration error: {exc}", err=True)
        sys.exit(2)


def _preflight() -> None:
    """Stop with one clear line when the database or Redis cannot be reached."""
    from ccp.extensions import check_connections

    try:
        check_connections(current_app)
    except ConfigError as exc:
        click.echo(f"ccp: {exc}", err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_make_app, add_version_option=False, load_dotenv=False)
@click.version_option(package_name="ccp")
def main() -> None:
    """CCP — control plane for fleets of self-hosted docker-compose tenants.

    Configure with environment variables (see README): DATABASE_URL, REDIS_URL, CCP_ENV, CCP_SECRET_KEY, ...
    """


@main.command()
@click.option("--burst", is_flag=True, help="Process queued jobs, then exit.")
@click.option("--name", default=None, help="Worker name (default: generated).")
@click.option("--queue", "queues", multiple=True,
              help="Queue to listen on, the first taken first (repeatable; default: CCP_QUEUE, then the scans' "
                   "CCP_QUEUE.background).")
@with_appcontext
def worker(burst: bool, name: str | None, queues: tuple[str, ...]) -> None:
    """Run an RQ worker inside the app context (processes upgrade jobs)."""
    from ccp.worker import run_worker

    _preflight()
    run_worker(current_app._get_current_object(), burst=burst, name=name, queues=queues)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def web(host: str, port: int) -> None:
    """Serve the UI and API with the threaded development server (use gunicorn in production)."""
    from werkzeug.serving import run_simple

    _preflight()
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-tenants", is_flag=True, help="Do not create demo tenants.")
def demo(host: str, port: int, no_tenants: bool) -> None:
    """Run web + worker + embedded Redis + SQLite with demo data; Ctrl-C stops everything."""
    from ccp.demo import run_demo

    sys.exit(run_demo(host=host, port=port, with_tenants=not no_tenants))


def _register_subcommands() -> None:
    from ccp.agent.cli import agent_command  # the agent's own entry point (light: no server dependencies)
    from ccp.cli.admin import instance_group, rotate_key_command, user_group
    from ccp.cli.render import render_command
    from ccp.cli.tokens import token_group

    main.add_command(user_group)
    main.add_command(instance_group)
    main.add_command(rotate_key_command)
    main.add_command(token_group)
    main.add_command(render_command, "render")
    main.add_command(agent_command, "agent")


_register_subcommands()

