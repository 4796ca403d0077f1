"""docs/operations.md's pip + systemd path, as far as a machine without systemd as PID 1 allows.

The shipped units (ccp/deploy/*.service) pass `systemd-analyze verify` once their paths point into this test's
folders; then each unit's own ExecStart runs in the foreground with the unit's Environment= and an
EnvironmentFile made from ccp/deploy/ccp.env.example, in the documented order: migrations, a user, web (/healthz
answers, the control socket is private), worker (starts, stops on SIGTERM), agent (init, check, signed health).
"""
from __future__ import annotations

import os
import secrets
import shlex
import shutil
import stat
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

from ccp.deploy import deploy_file
from tests.deploy.helpers import agent_health, free_port, stop, wait_http
from tests.tiers import in_ci

UNITS = ("ccp-web.service", "ccp-worker.service", "ccp-agent.service")
SCRIPTS = sysconfig.get_path("scripts")


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        reason = os.environ.get("CCP_SYSTEMD_SKIP_REASON") or "systemd-analyze is not installed (apt-get install systemd)"
        if in_ci() and not os.environ.get("CCP_SYSTEMD_SKIP_REASON"):
            pytest.fail(f"SYSTEMD-ANALYZE UNAVAILABLE IN CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture
def host(tmp_path):
    """This test's stand-ins for the host paths the units name, longest prefix first."""
    paths = {"/var/lib/ccp-agent": tmp_path / "var-lib-ccp-agent", "/var/lib/ccp": tmp_path / "var-lib-ccp",
             "/opt/ccp-agent/bin": Path(SCRIPTS), "/opt/ccp/bin": Path(SCRIPTS), "/run/ccp": tmp_path / "run-ccp",
             "/etc/ccp": tmp_path / "etc-ccp", "/srv": tmp_path / "srv", "/opt/tenants": tmp_path / "opt-tenants"}
    for real in paths.values():
        real.mkdir(parents=True, exist_ok=True, mode=0o700)
    return paths


def localize(text: str, paths: dict[str, Path]) -> str:
    for prefix, real in paths.items():
        text = text.replace(prefix, str(real))
    return text


def service_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_the_units_pass_systemd_analyze_verify(tmp_path, host):
    analyze = _systemd_analyze()
    for name in UNITS:
        (tmp_path / name).write_text(localize(deploy_file(name).read_text(), host))
    proc = subprocess.run([analyze, "verify", "--man=no", "--generators=no", *(str(tmp_path / n) for n in UNITS)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and (proc.stdout + proc.stderr).strip() == "", proc.stdout + proc.stderr


def test_verify_would_see_a_mistake(tmp_path, host):
    analyze = _systemd_analyze()
    broken = localize(deploy_file("ccp-web.service").read_text(), host).replace("ProtectSystem=", "ProtectSytem=")
    (tmp_path / "broken.service").write_text(broken)
    proc = subprocess.run([analyze, "verify", "--man=no", "--generators=no", str(tmp_path / "broken.service")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert "Unknown key 'ProtectSytem'" in proc.stdout + proc.stderr


def _unit(name: str, host: dict) -> tuple[list[str], dict[str, str]]:
    """The unit's ExecStart argv and its environment (Environment= lines, then its EnvironmentFile)."""
    text = localize(deploy_file(name).read_text(), host)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCP_", "DATABASE_URL", "REDIS_URL"))}
    for line in service_values(text, "Environment"):
        env.update(item.split("=", 1) for item in shlex.split(line))
    for file in service_values(text, "EnvironmentFile"):
        for line in Path(file.lstrip("-")).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    return shlex.split(service_values(text, "ExecStart")[0]), env


def _env_file(host: dict, redis_url: str) -> None:
    from cryptography.fernet import Fernet

    text = deploy_file("ccp.env.example").read_text()
    values = {"DATABASE_URL": f"sqlite:///{host['/var/lib/ccp']}/ccp.db", "REDIS_URL": redis_url,
              "CCP_SECRET_KEY": secrets.token_urlsafe(32), "CCP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
              "CCP_WEB_BIND": f"127.0.0.1:{free_port()}"}
    lines = [f"{line.split('=')[0]}={values[line.split('=')[0]]}" if line.split("=")[0] in values else line
             for line in text.splitlines()]
    lines.append(f"CCP_QUEUE=ccp-deploy-{secrets.token_hex(4)}")  # this test's own queue on a shared Redis
    (host["/etc/ccp"] / "ccp.env").write_text("\n".join(lines) + "\n")


def _run(argv, env, stdin=None):
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _wait_for_log(path: Path, proc: subprocess.Popen, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"exited {proc.returncode}: {path.read_text()[-2000:]}"
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged within {timeout} s: {path.read_text()[-2000:]}")


def test_the_documented_pip_and_systemd_path_runs_each_unit_in_the_foreground(tmp_path, host, redis_url):
    _env_file(host, redis_url)
    argv, env = _unit("ccp-web.service", host)
    ccp = str(Path(SCRIPTS) / "ccp")
    _run([ccp, "db", "upgrade"], env)  # migrations first
    assert "created user admin" in _run([ccp, "user", "create", "admin", "--role", "admin", "--password-stdin"],
                                        env, stdin="correct horse battery staple\n")

    web = subprocess.Popen(argv, env=env, cwd=host["/var/lib/ccp"], stdout=subprocess.DEVNULL,
                           stderr=open(tmp_path / "web.log", "w"))
    try:
        status, body = wait_http(f"http://{env['CCP_WEB_BIND']}/healthz", web)
        assert status == 200 and body["status"] == "ok", body
        sock = Path(env["CCP_CONTROL_SOCKET"])
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    finally:
        assert stop(web, timeout=40) == 0, (tmp_path / "web.log").read_text()[-2000:]

    argv, env = _unit("ccp-worker.service", host)
    worker = subprocess.Popen(argv, env=env, cwd=host["/var/lib/ccp"], stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "worker.log", "w"))
    try:
        _wait_for_log(tmp_path / "worker.log", worker, "Listening on")
    finally:
        assert stop(worker, timeout=60) == 0, (tmp_path / "worker.log").read_text()[-2000:]

    argv, env = _unit("ccp-agent.service", host)
    (host["/srv"] / "acme").mkdir()
    port = free_port()
    agent_cli = str(Path(SCRIPTS) / "ccp-agent")
    _run([agent_cli, "init", "--instance", f"acme={host['/srv'] / 'acme'}", "--config", argv[-1], "--key-id", "k1",
          "--state-dir", str(host["/var/lib/ccp-agent"]), "--listen", f"127.0.0.1:{port}"], env)
    checked = subprocess.run([agent_cli, "check", "--config", argv[-1]], env=env, capture_output=True, text=True,
                             timeout=60, check=False)
    assert "is valid: 1 instance(s)" in checked.stdout and "key file" in checked.stdout
    agent = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        key = (host["/etc/ccp"] / "agent.key").read_text().strip()
        status, health = agent_health(f"http://127.0.0.1:{port}", "k1", key, agent)
        assert status == 200 and health["instances"] == ["acme"]
    finally:
        assert stop(agent) == 0
