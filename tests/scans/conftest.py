"""A registry stand-in on 127.0.0.1 for the update check: real HTTP, the OCI distribution API's two calls it uses."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeRegistry:
    """Serves `HEAD /v2/<repo>/manifests/<tag>` (Docker-Content-Digest) and `GET /v2/<repo>/tags/list`."""

    def __init__(self) -> None:
        self.digests: dict[str, str] = {}
        self.calls: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                registry.calls.append(f"HEAD {self.path}")
                tag = self.path.rsplit("/", 1)[-1]
                digest = registry.digests.get(tag)
                self.send_response(200 if digest else 404)
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                registry.calls.append(f"GET {self.path}")
                body = json.dumps({"name": "acme/app", "tags": sorted(registry.digests)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry():
    reg = FakeRegistry()
    yield reg
    reg.stop()


class Receiver:
    """An HTTP endpoint on 127.0.0.1 recording what Apprise's json:// posts to it (a real receiving end)."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[dict] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                receiver.posts.append({"path": self.path, "body": json.loads(raw), "raw": raw})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_receiver():
    rec = Receiver()
    yield rec
    rec.stop()
