"""Helpers for the deployment tests: free ports, waiting for a process's HTTP answer, a signed agent health call."""
from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

from ccp.protocol.signing import sign_request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, *, headers=None, timeout: float = 60) -> tuple[int, dict | str]:
    """GET ``url`` until it answers (any status); fail at once if ``proc`` exits. ``headers`` may be a callable
    returning fresh headers per attempt (signatures use a new nonce each time)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process exited with {proc.returncode} before {url} answered")
        hdrs = headers() if callable(headers) else (headers or {})
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=hdrs), timeout=5) as resp:
                status, body = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
            time.sleep(0.2)
            continue
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body
    raise AssertionError(f"{url} did not answer within {timeout} s (last: {last})")


def agent_health(base_url: str, key_id: str, key: str, proc: subprocess.Popen, timeout: float = 60):
    """A signed GET /v1/health, retried until the agent answers."""
    return wait_http(base_url + "/v1/health", proc, timeout=timeout,
                     headers=lambda: sign_request(key_id, key.encode(), "GET", "/v1/health", b""))


def stop(proc: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM, wait, then SIGKILL if needed; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=10)
    return proc.returncode
