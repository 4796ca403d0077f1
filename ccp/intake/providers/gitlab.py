"""GitLab: `Tag Push Hook` and `Release Hook` events of a project.

GitLab proves itself in one of two ways, chosen by the secret the receiver holds:
- a secret token (any other text): GitLab sends it as is in X-Gitlab-Token, compared as a hash in constant time;
- a signing token (`whsec_<base64>`): GitLab signs as Standard Webhooks prescribe (webhook-id, webhook-timestamp,
  webhook-signature over "<id>.<timestamp>.<body>"), which also stops replays (stale after 5 minutes).

The delivery id is webhook-id, else Idempotency-Key (GitLab 17.4+), else X-Gitlab-Event-UUID. The repository is
`project.path_with_namespace`.
"""

from __future__ import annotations

from typing import Mapping

from ccp.intake.events import (
    Inbound, Parsed, Secret, check_standard_webhooks, check_token, delivery_id_of, header, obj, repository_of, tag_ref,
    tagged,
)

SIGNING_PREFIX = "whsec_"
DELETED = "0" * 40


def secret_form(secret: str) -> str:
    """A `whsec_` signing token is an HMAC key; any other secret is the X-Gitlab-Token value."""
    return "hmac" if secret.startswith(SIGNING_PREFIX) else "token"


def verify(secret: Secret, inbound: Inbound) -> None:
    """Standard Webhooks when the receiver holds a signing token, else X-Gitlab-Token equal to its secret token."""
    if secret.hmac_key:
        check_standard_webhooks(secret, inbound.headers, inbound.body)
    else:
        check_token(secret, header(inbound.headers, "X-Gitlab-Token"), "X-Gitlab-Token")


def parse(headers: Mapping[str, str], payload: dict) -> Parsed:
    """The release hints of a GitLab delivery (object_kind names the event)."""
    kind = payload.get("object_kind") or payload.get("event_name") or header(headers, "X-Gitlab-Event")
    kind = kind if isinstance(kind, str) and kind else "unknown"
    delivery = next((d for d in (delivery_id_of(header(headers, h)) for h in
                                 ("webhook-id", "Idempotency-Key", "X-Gitlab-Event-UUID")) if d), None)
    repo = repository_of(obj(payload.get("project")).get("path_with_namespace"))
    action = payload.get("action")
    name = f"{kind}.{action}" if kind == "release" and isinstance(action, str) else kind

    def done(hints=(), ignored=None) -> Parsed:
        return Parsed(name[:100], tuple(hints), ignored, delivery)

    if kind == "tag_push":
        ref = tag_ref(payload.get("ref"))
        if not ref:
            return done(ignored=f"a push to {ascii(payload.get('ref'))[:80]}, not a tag")
        if payload.get("after") == DELETED:
            return done(ignored=f"tag {ref} was deleted")
        return tagged(done, repo, ref, "project")
    if kind == "release":
        if action != "create":
            return done(ignored=f"release {action}: only new releases are releases")
        return tagged(done, repo, payload.get("tag"), "project")
    return done(ignored=f"event {kind!r} is not a release event")

