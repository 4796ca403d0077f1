"""The README's production web commands, run as written (bind and worker count aside) on a loopback port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _production_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Production notes", 1)[1].split("\n## ", 1)[0]
    commands = [" ".join(c.split()) for c in re.findall(r"`(gunicorn [^`]+)`", section)]
    # with ccp/deploy's config file; without a control socket; with it under the instance folder
    assert len(commands) == 3, commands
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", _production_commands())
def test_readme_gunicorn_command_serves_and_leaves_home_alone(command, tmp_path, redis_url):
    port = _free_port()
    home, instance = tmp_path / "home", tmp_path / "instance"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "CCP_ENV": "production",
           "CCP_SECRET_KEY": "s" * 32, "CCP_ENCRYPTION_KEYS": "yPz3Yq2R0Hq1mC6sZ1rU0cI0mXbq0aB1cD2eF3gH4iA=",
           "CCP_INSTANCE_DIR": str(instance), "REDIS_URL": redis_url}  # no XDG_RUNTIME_DIR, like a system service
    if "--config python:ccp.deploy.gunicorn_conf" in command:  # bind and workers come from its environment
        local = command
        env.update(CCP_WEB_BIND=f"127.0.0.1:{port}", CCP_WEB_WORKERS="1")
    else:
        assert "-w 4 -b 0.0.0.0:8000 " in command
        local = command.replace("-w 4 -b 0.0.0.0:8000 ", f"-w 1 -b 127.0.0.1:{port} ")
    # The shell expands $CCP_INSTANCE_DIR as an operator's would; `python -m gunicorn` is the gunicorn on PATH.
    proc = subprocess.Popen(["sh", "-c", f"exec {sys.executable} -m {local}"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        status, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert status == 200, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert list(home.iterdir()) == [], "gunicorn put its control socket in the home folder"
        if "--control-socket" in command or "--config" in command:
            assert (instance / "gunicorn.ctl").is_socket()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in out, out
