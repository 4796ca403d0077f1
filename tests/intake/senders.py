"""One sender per receiver kind, for the API tests: creates the receiver through the API and sends deliveries the
way that provider does (payloads and signatures from tests/intake/payloads.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.intake import payloads as P

KINDS = ("github", "gitlab", "gitea", "dockerhub", "distribution", "harbor", "quay")
DIGEST_ONLY = ("github", "distribution", "harbor")  # kinds whose events can name a digest without a tag
WITH_IDS = ("github", "gitlab", "gitea", "distribution")  # kinds that send a delivery id (a repeat is a replay)
REPO = "acme/app"


@dataclass
class Sender:
    """A receiver of `kind` and how to send it a delivery naming (repo, tag, digest)."""

    kind: str
    name: str
    secret: str
    url: str
    sent: list = field(default_factory=list)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def request(self, repo: str = REPO, tag: str | None = None, digest: str | None = None, *,
                delivery: str | None = None, tamper: bool = False) -> tuple[str, dict, bytes]:
        """(path, headers, body) of one delivery; `tamper` breaks its proof (signature, token or URL secret)."""
        secret = self.secret + ("x" if tamper else "")
        delivery = delivery or str(uuid.uuid4())
        path = self.path
        if self.kind == "github":
            event = "package" if digest else "release"
            raw = P.body(P.github_package(tag or "", digest, repo) if digest else P.github_release(tag, repo))
            return path, P.github_headers(secret, raw, event, delivery), raw
        if self.kind == "gitlab":
            raw = P.body(P.gitlab_tag_push(tag, repo))
            return path, P.gitlab_headers(secret, "Tag Push Hook", delivery), raw
        if self.kind == "gitea":
            raw = P.body(P.gitea_release(tag, repo))
            return path, P.gitea_headers(secret, raw, "release", delivery=delivery), raw
        if self.kind == "dockerhub":
            raw = P.body(P.dockerhub_push(tag, repo))
            return path.replace(self.secret, secret), {"Content-Type": "application/json"}, raw
        if self.kind == "quay":
            raw = P.body(P.quay_push(repo, [tag]))
            return path.replace(self.secret, secret), {"Content-Type": "application/json"}, raw
        if self.kind == "distribution":
            event = P.distribution_event(repo, digest or P.DIGEST_C, tag)
            event["id"] = delivery
            raw = P.body(P.distribution_envelope(event))
            return path, {"Content-Type": P.DISTRIBUTION_TYPE, "Authorization": f"Bearer {secret}"}, raw
        if self.kind == "harbor":
            raw = P.body(P.harbor_push(repo, [(tag, digest or P.DIGEST_C)]))
            return path, {"Content-Type": "application/json", "Authorization": secret}, raw
        raise AssertionError(self.kind)

    def send(self, client, *args, **kwargs):
        path, headers, raw = self.request(*args, **kwargs)
        return client.post(path, data=raw, headers=headers)


def make_sender(api, token: str, kind: str, image: str, **fields) -> Sender:
    """Create a receiver of `kind` for REPO through the API (admin token) and return its Sender."""
    body = {"name": f"{kind}-hook", "kind": kind, "image": image, "repository": REPO, **fields}
    resp = api("POST", "/api/receivers", token, json=body)
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()
    return Sender(kind, data["name"], data["secret"], data["url"])
