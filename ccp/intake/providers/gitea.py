"""Gitea and Forgejo: `release` (published), tag `push` and `create` (ref_type tag) events, and `package` events
of their container registry (created container versions).

Signed with the hex HMAC-SHA256 of the raw body in X-Forgejo-Signature (Forgejo) or X-Gitea-Signature (both send
it; no prefix). The delivery id is X-Forgejo-Delivery / X-Gitea-Delivery; the event X-Forgejo-Event /
X-Gitea-Event. The repository is `repository.full_name` (a package: `owner/name`).
"""

from __future__ import annotations

from typing import Mapping

from ccp.intake.events import (
    Inbound, Parsed, Secret, Unauthorized, check_hex_hmac, delivery_id_of, header, obj,
    repository_of, tag_ref,
    published_release, tagged,
)


def _either(headers: Mapping[str, str], suffix: str) -> str:
    return header(headers, f"X-Forgejo-{suffix}") or header(headers, f"X-Gitea-{suffix}")


def verify(secret: Secret, inbound: Inbound) -> None:
    """X-Forgejo-Signature or X-Gitea-Signature must be the hex HMAC of the body (constant-time)."""
    signature = _either(inbound.headers, "Signature")
    if not signature:
        raise Unauthorized("missing X-Forgejo-Signature / X-Gitea-Signature: set the webhook's secret")
    check_hex_hmac(secret, inbound.body, signature, "", "X-Gitea-Signature")


def parse(headers: Mapping[str, str], payload: dict) -> Parsed:
    """The release hints of a Gitea/Forgejo delivery."""
    event = _either(headers, "Event") or "unknown"
    action = payload.get("action")
    name = f"{event}.{action}" if isinstance(action, str) and action else event
    delivery = delivery_id_of(_either(headers, "Delivery"))

    def done(hints=(), ignored=None) -> Parsed:
        return Parsed(name[:100], tuple(hints), ignored, delivery)

    repo = repository_of(obj(payload.get("repository")).get("full_name"))
    if event == "release":
        return published_release(done, repo, payload.get("release"), action)
    if event == "push":
        ref = tag_ref(payload.get("ref"))
        if not ref:
            return done(ignored=f"a push to {ascii(payload.get('ref'))[:80]}, not a tag")
        return tagged(done, repo, ref)
    if event == "create":
        if payload.get("ref_type") != "tag":
            return done(ignored=f"a new {ascii(payload.get('ref_type'))[:20]}, not a tag")
        return tagged(done, repo, payload.get("ref"))
    if event == "package":
        package = obj(payload.get("package"))
        if action != "created" or package.get("type") != "container":
            return done(ignored="only created container packages are releases")
        owner = obj(package.get("owner")).get("login") or obj(package.get("owner")).get("username")
        repo = repo or (repository_of(f"{owner}/{package.get('name')}") if owner else None)
        return tagged(done, repo, package.get("version"))
    return done(ignored=f"event {event!r} is not a release event")

