"""Verification watches the health URLs for the instance's own monitor window when it has one."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from ccp.services.verify import verify_tenant


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def health_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()


class _RunningHost:
    """The host side of verify: every service running (the driver is CCP's boundary to the tenant host)."""

    def compose(self, action, deadline):
        assert action == "ps"
        return {"ok": True, "services": [{"name": "web", "state": "running", "health": "healthy"}]}


@pytest.mark.parametrize("own, expected", [(1, "over 1s"), (0, "over 0s"), (None, "over 2s")])
def test_monitor_window_is_the_instances_own_else_the_global_one(health_url, own, expected):
    settings = SimpleNamespace(step_deadline_s=30, monitor_window_s=2, agent_connect_timeout_s=2)
    instance = SimpleNamespace(health_urls=[health_url], monitor_window_s=own)
    report = verify_tenant(_RunningHost(), instance, settings)
    assert expected in report


class _WaitingHost:
    """A host with compose.wait: it answers each look with the next state (the agent waits between them)."""

    def __init__(self, answers):
        self.answers, self.waits = list(answers), []

    def compose_wait(self, wait_s):
        self.waits.append(wait_s)
        services = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return {"ok": True, "settled": False, "services": services}

    def compose(self, action, deadline):  # pragma: no cover - a waiting host is never polled with ps
        raise AssertionError("compose ps used although the host waits")


def test_a_host_that_waits_is_asked_without_sleeping_between_looks():
    starting = [{"name": "web", "state": "running", "health": "starting"}]
    healthy = [{"name": "web", "state": "running", "health": "healthy"}]
    host = _WaitingHost([starting, starting, healthy])
    settings = SimpleNamespace(step_deadline_s=30, monitor_window_s=0, agent_connect_timeout_s=2)
    instance = SimpleNamespace(health_urls=[], monitor_window_s=None, agent_capabilities=["compose.wait"])
    lines = []
    import time

    t0 = time.monotonic()
    report = verify_tenant(host, instance, settings, progress=lines.append)
    assert time.monotonic() - t0 < 0.1  # no back-off sleeps: the host did the waiting
    assert report == "services: web healthy" and "waiting: service web is running/starting" in lines
    assert len(host.waits) == 3 and all(0 < w <= 5 for w in host.waits)


def test_a_failing_service_seen_by_a_waiting_host_fails_verify():
    from ccp.services.verify import VerifyFailed

    host = _WaitingHost([[{"name": "web", "state": "exited", "health": "", "exit_code": 3}]])
    settings = SimpleNamespace(step_deadline_s=30, monitor_window_s=0, agent_connect_timeout_s=2)
    instance = SimpleNamespace(health_urls=[], monitor_window_s=None, agent_capabilities=["compose.wait"])
    with pytest.raises(VerifyFailed, match="service web is exited"):
        verify_tenant(host, instance, settings)
