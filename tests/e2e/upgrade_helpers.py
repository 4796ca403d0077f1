"""Helpers for the real-Docker upgrade tests (tests/e2e/test_upgrades_real.py) and bench/bench_apply.py.

A *real tenant* here is an install dir rendered from the tiny ``e2e-web`` set (tests/e2e/sets/), started with the
real ``docker compose``, and served by a real agent (ccp.agent, signed HTTP on 127.0.0.1) whose compose command is
autodetected (``docker compose``) — the same path production takes. Every subprocess and HTTP call has a timeout.
"""
from __future__ import annotations

import json
import secrets as _secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from tests.e2e.images import http_get

SETS_DIR = Path(__file__).resolve().parent / "sets"
MONITOR_WINDOW_S = "2"  # the upgrade/rollout e2e apps: a short monitor window
STEP_DEADLINE_S = "60"  # and a real step deadline
SET_NAME = "e2e-web"
STATE_DIR_NAME = ".ccp"  # the agent keeps snapshots/locks here when no state dir is given; never part of a tree
KEY_ID = "ccp-e2e"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def network_mode() -> str:
    """'bridge' or 'host' as recorded by .ci/docker-up.sh (see tests/e2e/images.py)."""
    from tests.e2e import images

    return images.network_mode()


def tenant_vars(port: int, sidecar_port: int | None = None) -> dict[str, str]:
    """The e2e-web vars for a tenant on `port` (host networking needs a second free port for the sidecar)."""
    net = network_mode()
    out = {"WEB_PORT": str(port), "NETWORK": net}
    if net == "host":
        out["SIDECAR_PORT"] = str(sidecar_port or free_port())
    return out


def render_files(slug: str, project: str, tag: str, vars_: dict, *, registered: bool = False,
                 secrets: dict | None = None, domain: str | None = None) -> dict[str, str]:
    """Render the e2e-web set exactly as CCP does (same function, same operator sets dir)."""
    from ccp.rendering.render import render_instance

    inst = SimpleNamespace(slug=slug, name=f"Tenant {slug}", domain=domain or f"{slug}.example.test",
                           compose_project=project, is_registered=registered, image_tag=tag, template_set=SET_NAME,
                           vars=vars_, health_urls=[])
    return dict(render_instance(inst, tag, secrets=secrets or {}, extra_dirs=(SETS_DIR,)).files)


def write_tree(install_dir: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = install_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def tree_bytes(install_dir: Path) -> dict[str, bytes]:
    """Every tenant file (relpath -> bytes), without the agent's own state dir."""
    return {str(p.relative_to(install_dir)): p.read_bytes() for p in sorted(install_dir.rglob("*"))
            if p.is_file() and STATE_DIR_NAME not in p.relative_to(install_dir).parts}


def compose(install_dir: Path, project: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "compose", "-p", project, *args], cwd=str(install_dir), capture_output=True,
                          text=True, timeout=timeout, check=False)


def container_id(install_dir: Path, project: str, service: str = "web") -> str:
    proc = compose(install_dir, project, "ps", "-q", service, timeout=30)
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""


def inspect(container: str) -> dict:
    """`docker inspect` of one container ({} when it does not exist)."""
    if not container:
        return {}
    proc = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        return {}
    return json.loads(proc.stdout)[0]


def running_image(install_dir: Path, project: str, service: str = "web") -> str:
    """The image reference the service's container was created from (Config.Image), '' when there is none."""
    return (inspect(container_id(install_dir, project, service)).get("Config") or {}).get("Image", "")


def page_version(url: str, timeout: float = 3.0) -> str | None:
    """'v1' / 'v2' / ... from the test image's page, None when it does not answer."""
    import re

    try:
        status, body = http_get(url, timeout)
    except (urllib.error.URLError, OSError):
        return None
    match = re.search(r"version ([A-Za-z0-9_.-]+)<", body) if status == 200 else None
    return match.group(1) if match else None


def wait_page(url: str, version: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = page_version(url)
        if seen == version:
            return
        time.sleep(0.25)
    raise AssertionError(f"{url} did not serve version {version} within {timeout}s (last: {seen})")


def wait_healthy(install_dir: Path, project: str, timeout: float = 45.0) -> None:
    """Wait until every service of the project is running and healthy (health-checked ones)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = compose(install_dir, project, "ps", "--all", "--format", "json", timeout=30)
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip().startswith("{")]
        last = ", ".join(f"{r.get('Service')}={r.get('State')}/{r.get('Health')}" for r in rows)
        if rows and all(r.get("State") == "running" and r.get("Health") in ("", "healthy") for r in rows):
            return
        time.sleep(0.25)
    raise AssertionError(f"{project} not healthy within {timeout}s: {last}")


class RealAgent:
    """A real ccp agent for one tenant on 127.0.0.1, compose command autodetected (``docker compose``)."""

    def __init__(self, state_dir: Path, slug: str, install_dir: Path, project: str) -> None:
        from ccp.agent.config import AgentConfig, InstanceConfig
        from ccp.agent.server import start_agent_in_thread

        self.key = _secrets.token_urlsafe(32)
        self.key_id = KEY_ID
        config = AgentConfig(keys={KEY_ID: self.key.encode()},
                             instances={slug: InstanceConfig(install_dir=install_dir, project=project)},
                             state_dir=state_dir, compose_command=None).validate()
        self.handle = start_agent_in_thread(config)
        self.url = self.handle.url
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.handle.stop()


REGISTERED_ENV = """\
# Installed by install.sh on 2025-03-02 -- keep this file private
# The web app reads these; CCP may only change IMAGE_TAG.
IMAGE_TAG=v1

WEB_PORT={port}
export APP_SECRET='{secret}'   # rotated 2025-02
APP_NAME="acme # not a comment"
  # indented comment kept as is
RESTART_POLICY=unless-stopped
"""


@dataclass
class RealTenant:
    """A tenant on real Docker: install dir + compose project + its agent + the CCP instance row id."""

    slug: str
    project: str
    install_dir: Path
    port: int
    agent: RealAgent
    instance_id: int | None = None
    registered: bool = False
    secret: str = ""
    vars: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return compose(self.install_dir, self.project, *args, timeout=timeout)

    def up(self, timeout: float = 120) -> None:
        proc = self.compose("up", "-d", "--remove-orphans", timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"compose up failed: {proc.stderr[-800:]}")

    def image(self, service: str = "web") -> str:
        return running_image(self.install_dir, self.project, service)

    def container(self, service: str = "web") -> str:
        return container_id(self.install_dir, self.project, service)

    def tree(self) -> dict[str, bytes]:
        return tree_bytes(self.install_dir)

    def down(self) -> subprocess.CompletedProcess:
        return self.compose("down", "-v", "--remove-orphans", "--timeout", "1", timeout=90)


def make_real_tenant(base: Path, *, registered: bool = False, tag: str = "v1", skip_files: tuple[str, ...] = (),
                     slug: str | None = None, extra_vars: dict[str, str] | None = None) -> RealTenant:
    """Write an install dir at `tag` from the e2e-web set (minus `skip_files`) and start its agent.

    Provisioned tenants get the whole set (with .env) rendered with a CCP-held secret; registered ones get the set
    without .env plus a hand-written .env (REGISTERED_ENV) holding their own secret. Nothing is started in Docker.
    """
    hexid = uuid.uuid4().hex[:8]
    slug = slug or f"{'reg' if registered else 'prov'}-{hexid}"
    project = f"ccpe2e-{hexid}"
    install_dir = base / "hosts" / slug
    install_dir.mkdir(parents=True)
    port = free_port()
    vars_ = {**tenant_vars(port), **(extra_vars or {})}
    secret = f"s3cr3t-{_secrets.token_hex(10)}"
    files = render_files(slug, project, tag, vars_, registered=registered,
                         secrets=None if registered else {"APP_SECRET": secret})
    write_tree(install_dir, {k: v for k, v in files.items() if k not in skip_files})
    if registered:
        (install_dir / ".env").write_text(REGISTERED_ENV.format(port=port, secret=secret))
    agent = RealAgent(base / "agents" / slug, slug, install_dir, project)
    return RealTenant(slug=slug, project=project, install_dir=install_dir, port=port, agent=agent,
                      registered=registered, secret=secret, vars=vars_)


def instance_data(t: RealTenant, tag: str = "v1") -> dict:
    """create_instance() data for a RealTenant reached through its agent."""
    data = {"slug": t.slug, "name": f"Tenant {t.slug}", "domain": f"{t.slug}.example.test", "driver": "remote",
            "agent_url": t.agent.url, "agent_key_id": t.agent.key_id, "agent_key": t.agent.key,
            "compose_project": t.project, "is_registered": t.registered, "image_tag": tag,
            "template_set": SET_NAME, "vars": dict(t.vars), "health_urls": [t.url]}
    if not t.registered:
        data["secrets"] = {"APP_SECRET": t.secret}
    return data
