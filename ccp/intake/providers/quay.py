"""Quay (quay.io and Red Hat Quay) "Repository Push" webhook notifications: `{"repository": "namespace/name",
"namespace", "name", "docker_url", "updated_tags": [...]}` (older Quay sends `updated_tags` as {tag: image id}).

Quay signs nothing: like Docker Hub, the receiver's URL carries a long random secret in its path, and the tags
are only hints, checked at the registry.
"""

from __future__ import annotations

from typing import Mapping

from ccp.intake.events import Hint, Inbound, Parsed, Secret, check_token, repository_of, tag_of


def verify(secret: Secret, inbound: Inbound) -> None:
    """The secret in the URL path must be the receiver's (constant-time, as hashes)."""
    check_token(secret, inbound.path_secret or "", "the secret in the URL")


def parse(headers: Mapping[str, str], payload: dict) -> Parsed:
    """One hint per updated tag (no digest, no delivery id)."""
    repo = repository_of(payload.get("repository"))
    tags = payload.get("updated_tags")
    names = list(tags) if isinstance(tags, (list, dict)) else []
    if repo is None:
        return Parsed("repo_push", ignored="the notification names no repository")
    hints = tuple(Hint(repo, tag) for tag in (tag_of(n) for n in names[:50]) if tag)
    if not hints:
        return Parsed("repo_push", ignored="the notification names no valid updated tag")
    return Parsed("repo_push", hints)
