"""Demo tenants for `ccp demo`: real install dirs rendered from the default set, served by a real agent on loopback.

Without a Docker engine (or unless CCP_DEMO_RUNTIME=docker) the agent uses the labelled dry-run runtime: the UI
shows "dry-run runtime" on these tenants and every compose output line says DRY RUN — no container is pretended to
have changed. The default set's images (postgres, nginx, ...) are not reachable offline, which is why real Docker
is opt-in for the demo.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select

from ccp.extensions import db
from ccp.models import Instance

DEMO_TENANTS = (
    ("harbour", "Harbour Tenants Union", False),
    ("meadow", "Meadow Food Co-op", True),
    ("summit", "Summit Climate Action", False),
)
KEY_ID = "ccp-demo"
_agents: list = []


def seed_demo_tenants(app) -> list[str]:
    """Create (once) the demo tenants and start their agent; returns lines to print for the operator."""
    from ccp.agent.config import AgentConfig, InstanceConfig
    from ccp.agent.server import start_agent_in_thread
    from ccp.hostops.dryrun import dry_run_command
    from ccp.services.instances import InstanceBusy, create_instance, update_instance

    settings = app.config["CCP"]
    hosts_dir = settings.instance_dir / "demo-hosts"
    docker = os.environ.get("CCP_DEMO_RUNTIME") == "docker" and _docker_available()
    key = secrets.token_urlsafe(32)
    config = AgentConfig(
        keys={KEY_ID: key.encode()},
        instances={slug: InstanceConfig(install_dir=hosts_dir / slug, project=f"demo{slug}")
                   for slug, _, _ in DEMO_TENANTS},
        state_dir=settings.instance_dir / "demo-agent", compose_command=None if docker else dry_run_command(),
    )
    kept = _KeptSecrets(settings.instance_dir / "demo-secrets.json")
    for slug, _name, registered in DEMO_TENANTS:
        _ensure_install_dir(hosts_dir / slug, slug, registered, None if registered else kept.get(slug))
    handle = start_agent_in_thread(config.validate())
    _agents.append(handle)
    lines: list[str] = []
    for slug, name, registered in DEMO_TENANTS:
        inst = db.session.execute(select(Instance).filter_by(slug=slug)).scalar_one_or_none()
        data = {"agent_url": handle.url, "agent_key_id": KEY_ID, "agent_key": key}
        if inst is None:
            create_instance({"slug": slug, "name": name, "domain": f"{slug}.demo.test", "driver": "remote",
                             "compose_project": f"demo{slug}", "is_registered": registered, "image_tag": "v1",
                             "secrets": None if registered else kept.get(slug), **data}, actor="system:demo")
        else:
            try:
                update_instance(inst, data, actor="system:demo")
            except InstanceBusy as exc:  # an upgrade of an earlier demo run, still marked active
                lines.append(f"{slug}: not reconnected to the new agent ({exc.message}); the worker marks it "
                             "interrupted within CCP_HEARTBEAT_STALE_S: start the demo again then")
    runtime = "real Docker" if docker else "dry-run runtime (no containers are changed; try tag 'broken')"
    return [f"demo tenants: {', '.join(s for s, _, _ in DEMO_TENANTS)} via agent {handle.url} — {runtime}", *lines]


def stop_demo_agents() -> None:
    """Stop the agents started by seed_demo_tenants."""
    while _agents:
        _agents.pop().stop()


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class _KeptSecrets:
    """Each provisioned demo tenant's secrets, made once and kept (0600) in the instance folder, so the values CCP
    holds and the ones rendered on the demo host agree across restarts: a preview then shows no secret change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, slug: str) -> dict[str, str]:
        if slug not in self.values:
            from ccp.rendering.sets import load_template_set

            self.values[slug] = {key: secrets.token_urlsafe(18)
                                 for key in sorted(load_template_set("default").secret_keys)}
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(self.values, fh)
        return self.values[slug]


def _ensure_install_dir(path: Path, slug: str, registered: bool, held: dict[str, str] | None) -> None:
    """Render the default set at v1 into a new install dir (a registered tenant gets its own .env)."""
    if path.exists():
        return
    from ccp.envfile.compose_refs import compose_variables
    from ccp.rendering.render import render_instance

    fake = SimpleNamespace(slug=slug, name=slug, domain=f"{slug}.demo.test", is_registered=registered,
                           image_tag="v1", template_set="default", vars={}, compose_project=f"demo{slug}",
                           health_urls=[])
    result = render_instance(fake, "v1", secrets=held)
    for rel, content in result.files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        if rel.endswith(".sh"):
            target.chmod(0o755)
    if registered:
        needed = sorted(compose_variables(result.files["docker-compose.yml"]).required - {"IMAGE_TAG"})
        lines = ["# Written by this tenant's own install.sh; CCP never reads these values", "IMAGE_TAG=v1"]
        lines += [f"{key}={secrets.token_urlsafe(12)}" for key in needed]
        env = path / ".env"
        env.write_text("\n".join(lines) + "\n")
        env.chmod(0o600)
