"""A small OCI registry on a real 127.0.0.1 socket, for tests where the real local registry does not fit (tags with
chosen versions, image ages, private repositories, the bearer-token flow). It speaks the parts of the distribution
API CCP uses: HEAD/GET manifests by tag or digest, tags/list with Link pages, config blobs, and a token realm.

`FakeRegistry.push(repo, tag, created=...)` stores a one-platform image (manifest + config) and returns its digest;
`push_index(...)` a multi-arch index. With `auth=("user", "pass")` every /v2 call wants a bearer token from
`/token`, which answers only to those Basic credentials; `auth="anonymous"` hands tokens to anyone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class FakeRegistry:
    def __init__(self, auth=None, page_size: int = 0):
        self.auth, self.page_size = auth, page_size
        self.manifests: dict[str, dict[str, tuple[str, bytes, str]]] = {}  # repo -> ref -> (digest, body, type)
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Authorization)
        self.token = "tok-" + hashlib.sha256(repr(auth).encode()).hexdigest()[:16]
        self.omit_digest_header = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def image(self, repo: str) -> str:
        return f"{self.host}/{repo}"

    def push(self, repo: str, tag: str | None, created: datetime | None = None, content: str = "") -> str:
        config = json.dumps({"created": (created or datetime(2026, 1, 1, tzinfo=timezone.utc)).isoformat(),
                             "architecture": "amd64", "os": "linux", "x": content or tag or ""}).encode()
        config_digest = self._blob(config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": config_digest, "size": len(config)}, "layers": []}).encode()
        return self._store(repo, tag, manifest, OCI_MANIFEST)

    def push_index(self, repo: str, tag: str, platforms: dict[str, str]) -> str:
        """An index over already pushed manifests: {"linux/arm64": digest, "linux/amd64": digest}."""
        entries = [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1,
                    "platform": {"os": p.split("/")[0], "architecture": p.split("/")[1]}} for p, d in platforms.items()]
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        return self._store(repo, tag, index, OCI_INDEX)

    def _blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def _store(self, repo: str, tag: str | None, body: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        refs = self.manifests.setdefault(repo, {})
        refs[digest] = (digest, body, media_type)
        if tag:
            refs[tag] = (digest, body, media_type)
        return digest

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _serve(self, head: bool):
                url = urlsplit(self.path)
                auth = self.headers.get("Authorization", "")
                registry.requests.append((self.command, url.path, auth))
                if url.path == "/token":
                    return self._token(url)
                if registry.auth and auth != f"Bearer {registry.token}":
                    realm = f"http://{registry.host}/token"
                    return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate":
                                      f'Bearer realm="{realm}",service="fake",scope="repository:x:pull"'}, head)
                if not url.path.startswith("/v2/"):
                    return self._send(404, head=head)
                path = url.path[4:]
                if "/manifests/" in path:
                    repo, ref = path.split("/manifests/", 1)
                    found = registry.manifests.get(repo, {}).get(ref)
                    if not found:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', head=head)
                    digest, body, media_type = found
                    headers = {"Content-Type": media_type}
                    if not registry.omit_digest_header:
                        headers["Docker-Content-Digest"] = digest
                    return self._send(200, body, headers, head)
                if "/blobs/" in path:
                    blob = registry.blobs.get(path.split("/blobs/", 1)[1])
                    return self._send(200 if blob else 404, blob or b"", head=head)
                if path.endswith("/tags/list"):
                    return self._tags(path[:-len("/tags/list")], url, head)
                return self._send(404, head=head)

            def _tags(self, repo: str, url, head: bool):
                tags = sorted(r for r in registry.manifests.get(repo, {}) if not r.startswith("sha256:"))
                start = int(parse_qs(url.query).get("last_index", ["0"])[0])
                size = registry.page_size or len(tags) or 1
                page, headers = tags[start:start + size], {"Content-Type": "application/json"}
                if start + size < len(tags):
                    headers["Link"] = f'</v2/{repo}/tags/list?n={size}&last_index={start + size}>; rel="next"'
                return self._send(200, json.dumps({"name": repo, "tags": page}).encode(), headers, head)

            def _token(self, url):
                if isinstance(registry.auth, tuple):
                    wanted = "Basic " + base64.b64encode(":".join(registry.auth).encode()).decode()
                    if self.headers.get("Authorization") != wanted:
                        return self._send(401, b'{"details":"bad credentials"}')
                return self._send(200, json.dumps({"token": registry.token}).encode(),
                                  {"Content-Type": "application/json"})

        return Handler


@pytest.fixture(name="fake_registry")
def registry_fixture():
    """The `fake_registry` fixture: factory(auth=None, page_size=0) -> a running FakeRegistry (closed at teardown).
    Test modules outside tests/intake import `registry_fixture` to get it."""
    made = []

    def make(**kwargs) -> FakeRegistry:
        made.append(FakeRegistry(**kwargs))
        return made[-1]

    yield make
    for registry in made:
        registry.close()
