"""A Docker Distribution (CNCF `registry`, `docker-registry`) `notifications` endpoint.

The registry POSTs an envelope (`application/vnd.docker.distribution.events.v1+json`) of `events[]`, each with an
`id`, an `action` (push, pull, delete, mount) and a `target` (mediaType, digest, repository, tag, url...). It
signs nothing; the endpoint's configured `headers: {Authorization: [Bearer <token>]}` is what proves it, compared
as a hash in constant time. Only pushes of manifests are hints (layer pushes and pulls are not); a multi-arch push
is several manifest events, some without a tag. The delivery id is the first event's id (a retry resends the
same envelope). An envelope without a manifest push (pulls - CCP's own digest lookups among them - and layer
pushes) is acknowledged and not stored: registry 2.x sends pulls whatever `ignore.actions` says.
"""

from __future__ import annotations

from typing import Mapping

from ccp.intake.events import (
    MANIFEST_TYPES, BadPayload, Hint, Inbound, Parsed, Secret, check_bearer, delivery_id_of, digest_of, obj,
    repository_of, tag_of,
)

MAX_EVENTS = 200


def verify(secret: Secret, inbound: Inbound) -> None:
    """The Authorization header must carry the receiver's token (`Bearer <token>` or the token alone)."""
    check_bearer(secret, inbound.headers)


def parse(headers: Mapping[str, str], payload: dict) -> Parsed:
    """One hint per manifest push in the envelope (repository, tag if any, digest)."""
    events = payload.get("events")
    if not isinstance(events, list):
        raise BadPayload("a registry notification is an envelope with an events list")
    first = obj(events[0]).get("id") if events else None
    delivery = delivery_id_of(first) if isinstance(first, str) else None
    hints, seen = [], []
    for event in events[:MAX_EVENTS]:
        event, target = obj(event), obj(obj(event).get("target"))
        seen.append(f"{event.get('action')} {target.get('mediaType', '?')}")
        if event.get("action") != "push" or target.get("mediaType") not in MANIFEST_TYPES:
            continue
        repo, digest = repository_of(target.get("repository")), digest_of(target.get("digest"))
        if repo and (digest or tag_of(target.get("tag"))):
            hints.append(Hint(repo, tag_of(target.get("tag")), digest))
    if not hints:
        kinds = sorted({kind.split(" ", 1)[0] for kind in seen}) or ["none"]
        return Parsed("events", ignored=f"no manifest push among {len(events)} event(s) ({', '.join(kinds)[:80]})",
                      delivery_id=delivery, keep=False)
    return Parsed("push", tuple(dict.fromkeys(hints)), delivery_id=delivery)
