"""`ccp demo`: web + worker + embedded Redis + SQLite with a demo operator, in one foreground command.

The demo process owns the embedded Redis and hands its socket URL to the web and worker child processes, so
Ctrl-C (or SIGTERM) stops the children first and then the Redis server: nothing is left running.

If the demo itself is killed (SIGKILL, OOM), the children still stop: on Linux they ask the kernel for a SIGTERM
when their parent dies. The daemonised redis-server stays up; the next start in the same folder joins and then
stops it (see ccp.extensions.EmbeddedRedis).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from ccp.demo.tenants import seed_demo_tenants, stop_demo_agents


def run_demo(*, host: str, port: int, with_tenants: bool = True) -> int:
    """Start everything, print the URL and login, wait for Ctrl-C; return the exit code."""
    from ccp.app import create_app
    from ccp.config import ConfigError
    from ccp.extensions import EmbeddedRedisError, get_redis, redis_store

    os.environ.setdefault("CCP_ENV", "demo")
    os.environ.setdefault("CCP_INSTANCE_DIR", str(Path(".ccp-demo").resolve()))
    try:
        app = create_app()
    except ConfigError as exc:
        click.echo(f"ccp: configuration error: {exc}", err=True)
        return 2
    try:
        with app.app_context():
            get_redis()  # starts the embedded Redis (owned by this process) when REDIS_URL is unset
    except (ConfigError, EmbeddedRedisError) as exc:
        click.echo(f"ccp: {exc}", err=True)
        return 2
    env = dict(os.environ, REDIS_URL=app.config["REDIS_URL"], CCP_ENV=app.config["CCP"].mode)
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        login = _ensure_demo_user()
        notes = seed_demo_tenants(app) if with_tenants else []

    ccp = [sys.executable, "-m", "ccp.cli"]
    die_with_us = _parent_death_signal(os.getpid())
    children = [
        subprocess.Popen([*ccp, "web", "--host", host, "--port", str(port)], env=env, preexec_fn=die_with_us),
        subprocess.Popen([*ccp, "worker", "--name", f"demo-{os.getpid()}"], env=env, preexec_fn=die_with_us),
    ]
    stop = {"signal": None}

    def _on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    click.echo("")
    click.echo(f"CCP demo running at http://{host}:{port}/")
    click.echo(f"  log in as: {login[0]} / {login[1]}")
    for note in notes:
        click.echo(f"  {note}")
    click.echo("  press Ctrl-C to stop")
    code = 0
    while stop["signal"] is None:
        for child in children:
            if child.poll() is not None:
                click.echo(f"ccp demo: a child process exited with {child.returncode}; stopping", err=True)
                stop["signal"] = -1
                code = 1
        time.sleep(0.3)
    _stop_children(children)
    stop_demo_agents()
    redis_store.stop_embedded(app)
    click.echo("ccp demo stopped")
    return code


def _parent_death_signal(parent_pid: int):
    """A preexec_fn that makes the child get SIGTERM when the demo dies, however it dies (Linux prctl); None
    elsewhere. prctl is looked up here, in the parent, so the forked child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def _in_child() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # the demo died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return _in_child


def _stop_children(children: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def _ensure_demo_user() -> tuple[str, str]:
    """Create (or reset) the demo operator with a fresh random password; return (username, password)."""
    from sqlalchemy import select

    from ccp.extensions import db
    from ccp.models import User
    from ccp.services.users import create_user

    password = secrets.token_urlsafe(12)
    user = db.session.execute(select(User).filter_by(username="demo")).scalar_one_or_none()
    if user is None:
        create_user("demo", password, "admin")
    else:
        user.set_password(password)
        db.session.commit()
    return "demo", password


