"""Serving the agent: in the foreground (``ccp agent``) or in a background thread (demo, tests)."""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server

from ccp.agent.app import create_agent_app
from ccp.agent.config import AgentConfig
from ccp.agent.update import run_trial_checks

log = logging.getLogger("ccp.agent")


@dataclass
class AgentHandle:
    """A running agent: ``url`` to reach it, ``stop()`` to shut it down (idempotent)."""

    url: str
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and wait for the server thread to end."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=10)
        self.server.server_close()


def _server(config: AgentConfig, host: str, port: int) -> BaseWSGIServer:
    # werkzeug's threaded server: the agent serves a handful of requests from one CCP; no extra dependency.
    return make_server(host, port, create_agent_app(config), threaded=True)


def start_agent_in_thread(config: AgentConfig, host: str = "127.0.0.1", port: int = 0) -> AgentHandle:
    """Start an agent for ``config`` on ``host:port`` (0 = a free port) in a daemon thread; returns its handle."""
    server = _server(config, host, port)
    thread = threading.Thread(target=server.serve_forever, name=f"ccp-agent-{server.server_port}", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    return AgentHandle(f"http://{shown}:{server.server_port}", server, thread)


def serve_forever(config: AgentConfig) -> None:
    """Serve in the foreground until SIGTERM or SIGINT, then stop cleanly. A new version on trial runs its checks
    first, and exits instead of serving when one fails (ccp.agent.update.run_trial_checks)."""
    run_trial_checks(config)
    server = _server(config, config.listen_host, config.listen_port)
    stopping = threading.Event()

    def on_signal(signum, _frame):
        if not stopping.is_set():
            stopping.set()
            log.info("agent: %s received, stopping", signal.Signals(signum).name)
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("agent listening on %s:%s for %s", config.listen_host, server.server_port,
             ", ".join(sorted(config.instances)) or "no instances")
    print(f"ccp agent listening on http://{config.listen_host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
