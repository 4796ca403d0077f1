"""A real agent on 127.0.0.1 (free port, background thread) over a small tenant, and a signed client."""
from pathlib import Path

import pytest

from ccp.drivers.agent_client import AgentClient
from ccp.agent.config import AgentConfig, InstanceConfig
from ccp.agent.server import start_agent_in_thread

KEY_ID, KEY = "k1", b"k1-secret-0123456789abcdef0123456789"
NEXT_ID, NEXT_KEY = "k2", b"k2-secret-abcdef0123456789abcdef0123"
ENV = "IMAGE_TAG=1.0.0\nDB_PASSWORD=supersecretvalue\n"


def snapshot_tree(root: Path) -> dict:
    """Every file under root with its bytes and mode (to prove nothing changed)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture
def world(tmp_path):
    """tmp_path/tenant (install dir), tmp_path/outside (must never be touched), tmp_path/state."""
    tenant = tmp_path / "tenant"
    (tenant / "nginx").mkdir(parents=True)
    (tenant / "docker-compose.yml").write_text("services: {}\n")
    (tenant / ".env").write_text(ENV)
    (tenant / "nginx" / "site.conf").write_text("server {}\n")
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "target.txt").write_text("outside\n")
    return tmp_path


@pytest.fixture
def agent(world):
    config = AgentConfig(keys={KEY_ID: KEY, NEXT_ID: NEXT_KEY},
                         instances={"acme": InstanceConfig(world / "tenant", "acme")},
                         state_dir=world / "state", max_body_bytes=64 * 1024, max_files=10).validate()
    handle = start_agent_in_thread(config, "127.0.0.1", 0)
    yield handle
    handle.stop()


@pytest.fixture
def client(agent):
    c = AgentClient(agent.url, KEY_ID, KEY, connect_timeout=2, read_timeout=10)
    yield c
    c.close()


@pytest.fixture
def dry_client(world):
    """A signed client of an agent whose compose command is the dry-run runtime."""
    from ccp.hostops.dryrun import dry_run_command

    config = AgentConfig(keys={KEY_ID: KEY}, instances={"acme": InstanceConfig(world / "tenant", "acme")},
                         state_dir=world / "state", compose_command=dry_run_command()).validate()
    handle = start_agent_in_thread(config, "127.0.0.1", 0)
    client = AgentClient(handle.url, KEY_ID, KEY, connect_timeout=2, read_timeout=10)
    yield client
    client.close()
    handle.stop()
