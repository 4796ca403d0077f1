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
