"""Agent configuration and the `ccp agent` command (run as `python -m ccp.agent`, stopped with SIGTERM)."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ccp.drivers.agent_client import AgentClient
from ccp.agent.config import AgentConfigError, load_config

SECRET = "s" * 40


def _toml(tmp_path, keys=True):
    tenant = tmp_path / "tenant"
    tenant.mkdir(exist_ok=True)
    text = f'listen = "127.0.0.1:0"\nstate_dir = "{tmp_path}/state"\n'
    if keys:
        text += f'[keys]\nk1 = "{SECRET}"\n'
    text += f'[instances.acme]\ninstall_dir = "{tenant}"\ncompose_files = ["docker-compose.yml", "x.yml"]\n'
    text += "[limits]\nmax_files = 7\n"
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_load_from_toml(tmp_path):
    cfg = load_config(_toml(tmp_path), env={})
    assert cfg.keys == {"k1": SECRET.encode()} and cfg.max_files == 7
    assert cfg.instances["acme"].project == "acme"
    assert cfg.instances["acme"].compose_files == ("docker-compose.yml", "x.yml")


def test_env_overrides(tmp_path):
    tenant = tmp_path / "t2"
    tenant.mkdir()
    cfg = load_config(_toml(tmp_path), env={"CCP_AGENT_KEYS": f"a:{SECRET},b:{SECRET}x",
                                            "CCP_AGENT_INSTANCES": f"beta={tenant}",
                                            "CCP_AGENT_LISTEN": "127.0.0.1:9999",
                                            "CCP_AGENT_COMPOSE_COMMAND": "docker-compose --ansi never"})
    assert set(cfg.keys) == {"a", "b"} and cfg.listen_port == 9999
    assert set(cfg.instances) == {"acme", "beta"} and cfg.compose_command == ["docker-compose", "--ansi", "never"]


@pytest.mark.parametrize("env,match", [
    ({}, "no agent key configured.*CCP_AGENT_KEYS"),
    ({"CCP_AGENT_KEYS": "k1:short"}, "shorter than 32"),
    ({"CCP_AGENT_KEYS": f"k1:{SECRET},k2:{SECRET},k3:{SECRET}"}, "at most two keys"),
    ({"CCP_AGENT_KEYS": "nocolon"}, "NAME:VALUE"),
    ({"CCP_AGENT_KEYS": f"k1:{SECRET}", "CCP_AGENT_INSTANCES": "acme=relative/dir"}, "install_dir"),
    ({"CCP_AGENT_KEYS": f"k1:{SECRET}", "CCP_AGENT_LISTEN": "nohostport"}, "HOST:PORT"),
])
def test_refuses_bad_settings_naming_them(tmp_path, env, match):
    with pytest.raises(AgentConfigError, match=match):
        load_config(_toml(tmp_path, keys=False), env=env)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CCP_AGENT_")}


def test_cli_refuses_to_start_without_key(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ccp.agent", "--config", str(_toml(tmp_path, keys=False))],
                          capture_output=True, text=True, timeout=30, env=_env(), check=False)
    assert proc.returncode != 0 and "no agent key configured" in proc.stderr


def test_cli_serves_and_stops_cleanly_on_sigterm(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ccp.agent", "--config", str(_toml(tmp_path)),
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        client = AgentClient(f"http://127.0.0.1:{port}", "k1", SECRET.encode(), connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                status, body = client.request("GET", "/v1/health")
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert status == 200 and body["instances"] == ["acme"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert SECRET not in err and "SIGTERM received" in err
