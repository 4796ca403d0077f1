"""`ccp demo` brings up the login page and a worker, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_serves_login_runs_worker_and_stops_cleanly(tmp_path):
    """Twice in the same folder: the second start updates the demo tenants (which announces changes over the
    embedded Redis) and must stop just as cleanly - it once left redis-server running."""
    for _ in range(2):
        _run_demo_once(tmp_path)


def test_a_sigkilled_demo_leaves_nothing_the_next_start_trips_on(tmp_path):
    """SIGKILL skips every clean-up: web and worker still stop (parent-death signal), the embedded redis-server
    stays up and is joined by the next start on the same port, which then stops it and leaves no stale socket."""
    port = _free_port()
    socket_file = tmp_path / "demo" / "redis" / "redis.sock"
    first = _start_demo(tmp_path, port)
    try:
        _wait_for_login(port)
        children = psutil.Process(first.pid).children(recursive=True)
        assert socket_file.is_socket(), "the embedded Redis socket lives under the instance folder"
        redis_pid = int((tmp_path / "demo" / "redis" / "redis.pid").read_text())
        first.kill()
        first.communicate(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
        assert psutil.pid_exists(redis_pid), "the daemonised redis-server outlives a SIGKILLed demo"
    finally:
        if first.poll() is None:
            first.kill()
    _run_demo_once(tmp_path, port=port)
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert not socket_file.exists() and not (tmp_path / "demo" / "redis" / "redis.pid").exists()


def _start_demo(tmp_path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CCP_ENV")}
    env["CCP_INSTANCE_DIR"] = str(tmp_path / "demo")
    return subprocess.Popen([sys.executable, "-m", "ccp.cli", "demo", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_login(port: int) -> None:
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        try:
            status = requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code
            break
        except requests.ConnectionError:
            time.sleep(0.3)
    assert status == 200


def _run_demo_once(tmp_path, port: int | None = None):
    port = port or _free_port()
    proc = _start_demo(tmp_path, port)
    try:
        _wait_for_login(port)
        descendants = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [" ".join(p.cmdline()) for p in descendants]
        assert any("ccp.cli worker" in c for c in cmdlines), cmdlines
        redis = [p for p in psutil.process_iter() if _is_ours(p, tmp_path)]
        assert len(redis) == 1, "the embedded redis-server of the demo should be running"
        tracked = descendants + [p for p in redis if p.pid not in {d.pid for d in descendants}]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "log in as: demo / " in out
        gone, alive = psutil.wait_procs(tracked, timeout=10)
        assert alive == [], [p.pid for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()


def _is_ours(proc: psutil.Process, tmp_path) -> bool:
    """The embedded redis-server of this demo: its working dir or config points into the demo folder."""
    try:
        if "redis-server" not in " ".join(proc.cmdline()):
            return False
        return str(tmp_path) in proc.cwd() or any(str(tmp_path) in f.path for f in proc.open_files())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
