"""GitHub and GHCR: `release` (published), `package` / `registry_package` (published container versions) and tag
`push` events, signed with X-Hub-Signature-256 (`sha256=` + hex HMAC-SHA256 of the raw body), one
X-GitHub-Delivery GUID per delivery (a redelivery keeps it).

The hint's repository is the GitHub repository (`owner/repo`, `repository.full_name`); a package not linked to a
repository names `namespace/name`. A GHCR multi-arch push arrives as several package events, most with an empty
tag and a platform manifest's digest: they are digest-only hints the decision coalesces.
"""

from __future__ import annotations

from typing import Mapping

from ccp.intake.events import (
    Hint, Inbound, Parsed, Secret, check_hex_hmac, delivery_id_of, digest_of, header, obj,
    repository_of, tag_of, tag_ref,
    published_release, tagged,
)

CONTAINER_TYPES = ("container", "docker")


def verify(secret: Secret, inbound: Inbound) -> None:
    """X-Hub-Signature-256 must be the HMAC of the body with the receiver's secret (constant-time)."""
    check_hex_hmac(secret, inbound.body, header(inbound.headers, "X-Hub-Signature-256"), "sha256=",
                   "X-Hub-Signature-256")


def parse(headers: Mapping[str, str], payload: dict) -> Parsed:
    """The release hints of a GitHub delivery (X-GitHub-Event names the event)."""
    event = header(headers, "X-GitHub-Event") or "unknown"
    action = payload.get("action")
    delivery = delivery_id_of(header(headers, "X-GitHub-Delivery"))
    name = f"{event}.{action}" if isinstance(action, str) and action else event

    def done(hints=(), ignored=None) -> Parsed:
        return Parsed(name[:100], tuple(hints), ignored, delivery)

    repo = repository_of(obj(payload.get("repository")).get("full_name"))
    if event == "ping":
        return done(ignored="ping: GitHub checks the hook is reachable")
    if event == "release":
        return published_release(done, repo, payload.get("release"), action)
    if event == "push":
        ref = tag_ref(payload.get("ref"))
        if not ref:
            return done(ignored=f"a push to {ascii(payload.get('ref'))[:80]}, not a tag")
        if payload.get("deleted"):
            return done(ignored=f"tag {ref} was deleted")
        return tagged(done, repo, ref)
    if event in ("package", "registry_package"):
        return _package(done, payload.get(event), repo, action)
    return done(ignored=f"event {event!r} is not a release event")



def _package(done, package, repo: str | None, action) -> Parsed:
    package = obj(package)
    if action != "published":
        return done(ignored=f"package {action}: only published versions are releases")
    if str(package.get("package_type", "")).lower() not in CONTAINER_TYPES:
        return done(ignored=f"a {ascii(package.get('package_type'))[:40]} package, not a container image")
    namespace = package.get("namespace") or obj(package.get("owner")).get("login")
    repo = repo or (repository_of(f"{namespace}/{package.get('name')}") if namespace else None)
    if repo is None:
        return done(ignored="the delivery names no repository")
    version = obj(package.get("package_version"))
    meta = obj(obj(version.get("container_metadata")).get("tag"))
    tag, digest = tag_of(meta.get("name")), digest_of(meta.get("digest")) or digest_of(version.get("version"))
    if tag is None and digest is None:
        return done(ignored="the package version names no tag and no digest")
    return done([Hint(repo, tag, digest)])
