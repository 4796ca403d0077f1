"""Test tenants: a real install dir rendered from the default set, driven locally or through a real agent.

The container runtime is CCP's labelled dry-run runtime (ccp.hostops.dryrun) at the process boundary; the e2e tier
uses real Docker instead.
"""

from __future__ import annotations

from pathlib import Path

from ccp.hostops.dryrun import dry_run_command

from ccp.rendering.render import render_instance
from ccp.rendering.sets import load_template_set

FAKE_COMPOSE = dry_run_command()
CANARY = "CANARY-s3cr3t-7f1d2c"  # a secret value that must never show up anywhere outside the tenant host

REGISTERED_ENV_HEAD = """# Installed by install.sh on 2025-03-02 — do not share this file
POSTGRES_PASSWORD={canary}
export JWT_SECRET='{canary}-jwt'
IMAGE_TAG=v1
"""


def provisioned_secrets(canary: str = CANARY) -> dict[str, str]:
    """A value for every secret the default set needs (each containing the canary)."""
    tset = load_template_set("default")
    return {key: f"{canary}-{key.lower()}" for key in sorted(tset.secret_keys)}


def make_tenant_files(install_dir: Path, instance, tag: str, secrets: dict | None = None,
                      registered_env: str | None = None) -> None:
    """Write the rendered set for `tag` into `install_dir` (plus a hand-written .env for registered tenants)."""
    install_dir.mkdir(parents=True, exist_ok=True)
    result = render_instance(instance, tag, secrets=secrets or {})
    for rel, content in result.files.items():
        path = install_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    if registered_env is not None:
        env = registered_env
        # A registered tenant's .env has every variable the compose file needs (its install script wrote them).
        from ccp.envfile.compose_refs import compose_variables

        needed = compose_variables(result.files["docker-compose.yml"]).required
        present = {line.split("=", 1)[0].removeprefix("export ").strip() for line in env.splitlines() if "=" in line}
        env += "".join(f"{key}=value-of-{key.lower()}\n" for key in sorted(needed - present))
        (install_dir / ".env").write_text(env)
    scripts = install_dir / "scripts"
    for name in ("upgrade.sh", "image-upgrade.sh"):
        if (scripts / name).exists():
            (scripts / name).chmod(0o755)


class AgentForTests:
    """A real agent (ccp.agent) serving tenants on 127.0.0.1 in a thread, with its key."""

    key_id = "ccp-test"

    def __init__(self, state_dir: Path, instances: dict[str, Path], project: str,
                 compose_command: list[str] | None) -> None:
        import secrets as _secrets

        from ccp.agent.config import AgentConfig, InstanceConfig
        from ccp.agent.server import start_agent_in_thread

        self.key = _secrets.token_urlsafe(32)
        config = AgentConfig(
            keys={self.key_id: self.key.encode()},
            instances={slug: InstanceConfig(install_dir=path, project=project) for slug, path in instances.items()},
            state_dir=state_dir, compose_command=compose_command,
        ).validate()
        self.handle = start_agent_in_thread(config)
        self.url = self.handle.url

    def stop(self) -> None:
        self.handle.stop()


def start_agent(state_dir: Path, instances: dict[str, Path], project: str,
                compose_command: list[str] | None = FAKE_COMPOSE) -> AgentForTests:
    """Start a real agent for `instances` (slug -> install dir) on a free loopback port.

    The runtime is the dry-run compose unless `compose_command` says otherwise (None = autodetect real compose).
    """
    return AgentForTests(state_dir, instances, project, compose_command)
