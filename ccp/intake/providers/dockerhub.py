"""Docker Hub repository webhooks: `{"push_data": {"tag", "pushed_at", "pusher"}, "repository": {"repo_name", ...},
"callback_url"}` on every push of a tag.

Docker Hub signs nothing, so the receiver's URL carries a long random secret in its path
(`/api/hooks/<name>/<secret>`), compared as a hash in constant time; the pushed tag is only a hint, checked again
at the registry before anything happens. The callback_url is never called and never stored (it is a credential).
"""

from __future__ import annotations

from typing import Mapping

from ccp.intake.events import Hint, Inbound, Parsed, Secret, check_token, obj, repository_of, tag_of


def verify(secret: Secret, inbound: Inbound) -> None:
    """The secret in the URL path must be the receiver's (constant-time, as hashes)."""
    check_token(secret, inbound.path_secret or "", "the secret in the URL")


def parse(headers: Mapping[str, str], payload: dict) -> Parsed:
    """One hint: the repository and the tag pushed (Docker Hub sends no digest and no delivery id)."""
    repo = repository_of(obj(payload.get("repository")).get("repo_name"))
    pushed = obj(payload.get("push_data")).get("tag")
    if repo is None:
        return Parsed("push", ignored="the delivery names no repository")
    tag = tag_of(pushed)
    if tag is None:
        return Parsed("push", ignored=f"push of {ascii(pushed)[:80]}, not a valid tag")
    return Parsed("push", (Hint(repo, tag),))
