"""The labelled dry-run runtime: says DRY RUN on every line, simulates failures by tag, never runs containers."""

from __future__ import annotations

import pytest

from ccp.hostops.tenant import TenantHost
from ccp.hostops.dryrun import dry_run_command, is_dry_run

COMPOSE = """services:
  web:
    image: example/web:${IMAGE_TAG:-latest}
    healthcheck: {test: ["CMD", "true"]}
  db:
    image: postgres:16
  agent:
    image: example/agent
    profiles: [ccp-agent]
"""


@pytest.fixture
def host(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    (tmp_path / ".env").write_text("IMAGE_TAG=v1\n")
    return TenantHost(tmp_path, "demo", compose_command=dry_run_command(), state_dir=tmp_path / ".state")


def test_up_and_ps_report_labelled_services(host):
    up = host.compose("up", 20)
    assert up["ok"] and all("DRY RUN" in line for line in up["output_tail"].strip().splitlines())
    services = {s["name"]: s for s in host.compose("ps", 20)["services"]}
    assert set(services) == {"web", "db"}  # profile services are not started, as with compose
    assert services["web"]["image"] == "example/web:v1" and services["web"]["health"] == "healthy"


@pytest.mark.parametrize("tag, state, health", [("broken", "exited", ""), ("unhealthy", "running", "unhealthy")])
def test_tags_simulate_failures(host, tmp_path, tag, state, health):
    (tmp_path / ".env").write_text(f"IMAGE_TAG={tag}\n")
    host.compose("up", 20)
    web = next(s for s in host.compose("ps", 20)["services"] if s["name"] == "web")
    assert (web["state"], web["health"]) == (state, health)


def test_nopull_fails_pull(host, tmp_path):
    (tmp_path / ".env").write_text("IMAGE_TAG=nopull\n")
    result = host.compose("pull", 20)
    assert not result["ok"] and "manifest unknown" in result["output_tail"]


def test_is_dry_run():
    assert is_dry_run(dry_run_command())
    assert not is_dry_run(["docker", "compose"]) and not is_dry_run(None)
