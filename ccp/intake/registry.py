"""Asking a registry what a tag points to now (OCI distribution API, Docker Registry HTTP API v2).

- `digest(tag)`: `HEAD /v2/<name>/manifests/<tag>` with an Accept for OCI index/manifest and Docker manifest
  list/v2, read from `Docker-Content-Digest` (a `GET` hashed locally when a registry omits the header on HEAD).
- `tags()`: `GET /v2/<name>/tags/list`, following `Link` pages up to MAX_PAGES.
- `created(digest)`: the image's creation time from its config blob (an index: its first linux/amd64 entry, else
  its first), for a minimum-age policy.

Authentication follows the registry's challenge: `Bearer realm=...,service=...,scope=...` gets a token from the
realm (anonymously, or with Basic credentials when the receiver holds some), `Basic` gets the credentials directly.
Every call has a timeout and a size cap; credentials and tokens never appear in errors or logs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests

from ccp.bodies import parse_json
from ccp.intake.events import DIGEST, MANIFEST_TYPES

ACCEPT = ", ".join(sorted(MANIFEST_TYPES))
TIMEOUT = (3.05, 10)
MAX_BYTES = 4 * 1024 * 1024
MAX_PAGES = 20
LOOPBACK = ("127.", "localhost", "[::1]")
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
HOST = re.compile(r"[a-z0-9.-]+(:[0-9]{1,5})?|\[[0-9a-f:]+\](:[0-9]{1,5})?|localhost(:[0-9]{1,5})?")
PATH = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """The registry could not be asked (unreachable, refused, malformed answer); the message names the registry."""


@dataclass(frozen=True)
class ImageRef:
    """An image repository: the registry host, the repository path, and the scheme CCP talks to it with."""

    host: str
    path: str
    scheme: str = "https"

    @classmethod
    def parse(cls, text: str) -> "ImageRef":
        """`ghcr.io/acme/app`, `127.0.0.1:5055/team/web`, `nginx` (Docker Hub: `library/nginx`); no tag or digest.
        Loopback registries are spoken to over plain HTTP, as Docker does. Raises ValueError when malformed."""
        text = text if isinstance(text, str) else ""
        if not text or len(text) > 255 or "@" in text or "://" in text:
            raise ValueError("an image repository such as ghcr.io/acme/app or 127.0.0.1:5055/team/web "
                             "(no scheme, tag or digest)")
        first, _, rest = text.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host, path = first.lower(), rest
        else:
            host, path = "docker.io", text
        if host in DOCKER_HUB:
            host, path = "registry-1.docker.io", path if "/" in path else f"library/{path}"
        if not HOST.fullmatch(host) or not PATH.fullmatch(path):
            raise ValueError(f"{text!r} is not an image repository (lowercase path, no tag)")
        return cls(host, path, "http" if host.startswith(LOOPBACK) else "https")

    def url(self, suffix: str) -> str:
        """The API URL of `/v2/<path>/<suffix>`."""
        return f"{self.scheme}://{self.host}/v2/{self.path}/{suffix}"

    def __str__(self) -> str:
        return f"{self.host}/{self.path}"


class RegistryClient:
    """A short-lived client for one repository (one bearer token is reused across its calls)."""

    def __init__(self, ref: ImageRef, username: str | None = None, password: str | None = None,
                 session: requests.Session | None = None, timeout=TIMEOUT) -> None:
        self.ref, self.timeout = ref, timeout
        self._basic = (username, password) if username and password else None
        self._session = session or requests.Session()
        self._token: str | None = None
        self._basic_ok = False  # Basic credentials are sent only after the registry asked for them

    def digest(self, tag: str) -> str | None:
        """The digest `tag` points to now, or None when the registry has no such tag (404)."""
        resp = self._call("HEAD", self.ref.url(f"manifests/{tag}"), {"Accept": ACCEPT})
        if resp.status_code == 404:
            return None
        self._ok(resp, f"tag {tag}")
        digest = resp.headers.get("Docker-Content-Digest", "")
        if DIGEST.fullmatch(digest):
            return digest
        resp = self._call("GET", self.ref.url(f"manifests/{tag}"), {"Accept": ACCEPT})
        self._ok(resp, f"tag {tag}")
        return "sha256:" + hashlib.sha256(self._body(resp)).hexdigest()

    def tags(self) -> list[str]:
        """Every tag of the repository (pages followed up to MAX_PAGES)."""
        url, out = self.ref.url("tags/list?n=1000"), []
        for _ in range(MAX_PAGES):
            resp = self._call("GET", url, {"Accept": "application/json"})
            self._ok(resp, "the tag list")
            tags = self._json(resp).get("tags") or []
            out += [t for t in tags if isinstance(t, str)]
            link = re.match(r"\s*<([^>]+)>", resp.headers.get("Link", ""))
            if not link:
                return out
            url = f"{self.ref.scheme}://{self.ref.host}{link.group(1)}" if link.group(1).startswith("/") else ""
            if not url:
                return out
        return out

    def created(self, digest: str) -> datetime | None:
        """When the image behind `digest` was built (its config's `created`), or None when it does not say."""
        manifest = self._manifest(digest)
        if "manifests" in manifest:  # an index: take the linux/amd64 image, else the first one
            entries = [m for m in manifest["manifests"] if isinstance(m, dict)]
            chosen = next((m for m in entries if (m.get("platform") or {}).get("architecture") == "amd64"
                           and (m.get("platform") or {}).get("os") == "linux"), entries[0] if entries else None)
            if chosen is None or not DIGEST.fullmatch(str(chosen.get("digest", ""))):
                return None
            manifest = self._manifest(chosen["digest"])
        config = (manifest.get("config") or {}).get("digest", "")
        if not DIGEST.fullmatch(str(config)):
            return None
        resp = self._call("GET", self.ref.url(f"blobs/{config}"), {})
        self._ok(resp, "the image config")
        created = self._json(resp).get("created")
        try:
            return datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(created, str) else None
        except ValueError:
            return None

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _manifest(self, digest: str) -> dict:
        resp = self._call("GET", self.ref.url(f"manifests/{digest}"), {"Accept": ACCEPT})
        self._ok(resp, f"manifest {digest[:19]}")
        return self._json(resp)

    def _call(self, method: str, url: str, headers: dict) -> requests.Response:
        resp = self._send(method, url, headers)
        if resp.status_code == 401 and self._answer_challenge(resp.headers.get("WWW-Authenticate", "")):
            resp = self._send(method, url, headers)
        return resp

    def _send(self, method: str, url: str, headers: dict) -> requests.Response:
        headers = dict(headers)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            return self._session.request(method, url, headers=headers, timeout=self.timeout, stream=True,
                                         allow_redirects=True,
                                         auth=self._basic if self._token is None and self._basic_ok else None)
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.ref.host} is unreachable: {type(exc).__name__}") from None

    def _answer_challenge(self, challenge: str) -> bool:
        """Take the auth the registry asks for; False when there is nothing more to try."""
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and self._basic and not self._basic_ok:
            self._basic_ok = True
            return True
        if scheme != "bearer" or self._token is not None:
            return False
        params = dict(CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"registry {self.ref.host} sent an unusable auth challenge")
        query = {"service": params.get("service", ""), "scope": params.get("scope") or f"repository:"
                 f"{self.ref.path}:pull"}
        try:
            resp = self._session.get(realm, params=query, auth=self._basic, timeout=self.timeout, stream=True)
        except requests.RequestException as exc:
            raise RegistryError(f"the token service of {self.ref.host} is unreachable: {type(exc).__name__}") \
                from None
        if resp.status_code != 200:
            raise RegistryError(f"the token service of {self.ref.host} refused ({resp.status_code}): "
                                "check the receiver's registry credentials")
        body = self._json(resp)
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service of {self.ref.host} sent no token")
        self._token = token
        return True

    def _ok(self, resp: requests.Response, what: str) -> None:
        if resp.status_code in (401, 403):
            raise RegistryError(f"registry {self.ref.host} refused access to {self.ref.path} ({resp.status_code}): "
                                "check the receiver's registry credentials")
        if resp.status_code != 200:
            raise RegistryError(f"registry {self.ref.host} answered {resp.status_code} for {what} of {self.ref.path}")

    def _body(self, resp: requests.Response) -> bytes:
        data = resp.raw.read(MAX_BYTES + 1, decode_content=True) if resp.raw is not None else resp.content
        if len(data) > MAX_BYTES:
            raise RegistryError(f"registry {self.ref.host} sent more than {MAX_BYTES} bytes")
        return data

    def _json(self, resp: requests.Response) -> dict:
        try:
            value = parse_json(self._body(resp))
        except ValueError:
            raise RegistryError(f"registry {self.ref.host} sent something that is not JSON") from None
        if not isinstance(value, dict):
            raise RegistryError(f"registry {self.ref.host} sent JSON that is not an object")
        return value
