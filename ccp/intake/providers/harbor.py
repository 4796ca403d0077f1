"""Harbor project webhooks: `PUSH_ARTIFACT` in the Default payload format (`{"type", "occur_at", "operator",
"event_data": {"resources": [{"digest", "tag", "resource_url"}], "repository": {"repo_full_name", ...}}}`) or
`harbor.artifact.pushed` in the CloudEvents format (the same `resources`/`repository` under `data`).

Harbor signs nothing; the policy's "Auth Header" is sent as the Authorization header, compared as a hash in
constant time. Harbor sends no delivery id.
"""

from __future__ import annotations

from typing import Mapping

from ccp.intake.events import Hint, Inbound, Parsed, Secret, check_bearer, digest_of, obj, repository_of, tag_of

PUSH_TYPES = ("PUSH_ARTIFACT", "harbor.artifact.pushed")


def verify(secret: Secret, inbound: Inbound) -> None:
    """The Authorization header must be the receiver's token (the policy's Auth Header, `Bearer ` optional)."""
    check_bearer(secret, inbound.headers)


def parse(headers: Mapping[str, str], payload: dict) -> Parsed:
    """One hint per pushed resource: the repository's full name, the tag (if any) and the digest."""
    kind = payload.get("type")
    kind = kind if isinstance(kind, str) and kind else "unknown"
    data = obj(payload.get("data") if "specversion" in payload else payload.get("event_data"))
    if kind not in PUSH_TYPES:
        return Parsed(kind[:100], ignored=f"event {kind[:60]!r} is not an artifact push")
    repo = repository_of(obj(data.get("repository")).get("repo_full_name"))
    if repo is None:
        return Parsed(kind, ignored="the event names no repository")
    resources = data.get("resources") if isinstance(data.get("resources"), list) else []
    hints = []
    for resource in map(obj, resources[:50]):
        tag, digest = tag_of(resource.get("tag")), digest_of(resource.get("digest"))
        if tag or digest:
            hints.append(Hint(repo, tag, digest))
    if not hints:
        return Parsed(kind, ignored="the event names no tag and no digest")
    return Parsed(kind, tuple(hints))
