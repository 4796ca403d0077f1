"""`ccp agent init` / `check` against a real Docker engine: the compose project comes from the labels real compose
puts on a tenant's containers (created, not started: the labels are what counts, and creating is cheap)."""
from __future__ import annotations

from click.testing import CliRunner

from ccp.agent.cli import agent_command
from ccp.agent.config import load_config


def test_init_reads_the_project_real_compose_gave_the_containers(compose_project, tmp_path, monkeypatch):
    for name in ("CCP_AGENT_KEYS", "CCP_AGENT_CONFIG", "CCP_AGENT_INSTANCES", "CCP_AGENT_COMPOSE_COMMAND"):
        monkeypatch.delenv(name, raising=False)
    tenant = compose_project(tag="v1", path=tmp_path / "acme-install")  # folder name != project: ask Docker
    assert tenant.compose("create", timeout=120).returncode == 0
    assert tenant.project != tenant.path.name
    (tenant.path / "docker-compose.yml").write_text(
        (tenant.path / "docker-compose.yml").read_text().replace(f"name: {tenant.project}\n", ""))
    config = tmp_path / "etc" / "agent.toml"
    result = CliRunner().invoke(agent_command, ["init", "--instance", f"acme={tenant.path}", "--config", str(config),
                                                "--state-dir", str(tmp_path / "state"), "--listen", "127.0.0.1:8765"])
    assert result.exit_code == 0, result.output
    assert "from its containers' compose label" in result.output
    assert load_config(config, env={}).instances["acme"].project == tenant.project

    checked = CliRunner().invoke(agent_command, ["check", "--config", str(config)])
    assert f"its running containers belong to project '{tenant.project}'" in checked.output, checked.output
    assert "the Docker engine answers" in checked.output
