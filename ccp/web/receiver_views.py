"""What the Receivers and Deliveries pages show, shaped here so templates hold no logic: the form's fields parsed
into what ccp.services.receivers validates, per-kind help, and delivery rows with their decision's category."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ccp.models import Receiver, WebhookDelivery

TEXT = ("name", "kind", "secret", "image", "repository", "registry_username", "registry_password", "semver_range",
        "tag_include", "tag_exclude")
NUMBERS = ("min_age_s", "canary", "wave_size")
_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII only: \d would take Unicode digits
CATEGORIES = ("not a release", "unknown repository", "policy", "duplicate", "downgrade", "not resolvable",
              "cooldown", "tenants held", "not started", "no tenants")


@dataclass(frozen=True)
class KindHelp:
    """How one kind is set up: its label, where its secret goes, and examples of the repository and image."""

    label: str
    secret: str  # what the secret field is for ("" : CCP makes it, it goes into the URL)
    repository: str
    image: str
    where: str  # where in the provider the URL goes


KINDS = {
    "github": KindHelp("GitHub / GHCR", "the webhook's Secret (X-Hub-Signature-256)", "acme/app (owner/repo)",
                       "ghcr.io/acme/app", "Repository → Settings → Webhooks: events Releases, Packages (or "
                       "Registry packages) and Pushes; content type application/json"),
    "gitlab": KindHelp("GitLab", "the Secret token (X-Gitlab-Token), or a whsec_ signing token",
                       "group/project", "registry.gitlab.com/group/project",
                       "Project → Settings → Webhooks: Tag push events and Releases events"),
    "gitea": KindHelp("Gitea / Forgejo", "the webhook's Secret (X-Gitea-Signature / X-Forgejo-Signature)",
                      "owner/repo", "git.example.com/owner/app", "Repository → Settings → Webhooks → Gitea (or "
                      "Forgejo): Release and Create/Push events, POST, application/json"),
    "dockerhub": KindHelp("Docker Hub", "", "acme/app (namespace/repository)", "acme/app",
                          "Repository → Webhooks: paste the URL shown once (it carries the secret)"),
    "distribution": KindHelp("Docker Distribution registry", "the token for `Authorization: Bearer <token>`",
                             "team/app (the path in the registry)", "registry.example.com/team/app",
                             "the registry's config.yml: notifications.endpoints (url, headers.Authorization)"),
    "harbor": KindHelp("Harbor", "the webhook policy's Auth Header", "project/app (repo_full_name)",
                       "harbor.example.com/project/app", "Project → Webhooks → New: HTTP, Default payload, "
                       "Artifact pushed, Auth Header = the secret"),
    "quay": KindHelp("Quay", "", "namespace/app", "quay.io/namespace/app",
                     "Repository → Settings → Create Notification: Push to Repository → Webhook POST to the URL "
                     "shown once"),
}


def form_data(form, *, creating: bool) -> tuple[dict, dict[str, str]]:
    """(data for the receivers service, parse errors by field) from the posted form."""
    data: dict = {}
    errors: dict[str, str] = {}
    for name in TEXT:
        if name in ("name", "kind") and not creating:
            continue
        value = (form.get(name) or "").strip()
        if name in ("secret", "registry_password") and not value:
            continue  # empty: CCP makes the secret / the stored password stays
        data[name] = value or None
    data["instances"] = [s for s in re.split(r"[\s,]+", form.get("instances") or "") if s]
    for name in NUMBERS:
        value = (form.get(name) or "").strip()
        if not value:
            if name == "min_age_s":
                data[name] = None
            elif creating:
                data[name] = 1 if name == "canary" else 5
            else:
                errors[name] = "required: a whole number"
        elif _DIGITS.fullmatch(value):
            data[name] = int(value)
        else:
            errors[name] = "a whole number"
    if not creating:
        enabled = form.get("enabled")
        if enabled not in (None, "on"):
            errors["enabled"] = "tick the box or leave it empty"
        data["enabled"] = enabled == "on"
    return data, errors


def form_values(receiver: Receiver | None, form=None) -> dict:
    """What the form shows: the submitted values after an error, else the receiver's, else defaults."""
    if form is not None:
        return {name: form.get(name, "") for name in (*TEXT, *NUMBERS, "instances", "enabled")} | {
            "secret": "", "registry_password": ""}
    if receiver is None:
        return {"kind": "github", "canary": 1, "wave_size": 5, "enabled": "on"}
    values = {name: getattr(receiver, name) or "" for name in TEXT if name not in ("secret", "registry_password")}
    values.update(min_age_s=receiver.min_age_s or "", canary=receiver.canary, wave_size=receiver.wave_size,
                  instances=", ".join(receiver.instances), enabled="on" if receiver.enabled else "")
    return values


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery as the Deliveries table shows it."""

    id: int
    received_at: datetime
    receiver: str | None
    source: str
    event: str
    named: str  # repository:tag@digest, shortened
    decision: str
    category: str | None  # the reason's category (policy, downgrade...): the badge's colour
    reason: str
    rollout_id: int | None
    replay_of: int | None
    replayable: bool


def delivery_rows(deliveries: list[WebhookDelivery]) -> list[DeliveryRow]:
    """The rows of the Deliveries table (a CI delivery cannot be replayed: CCP keeps no body to replay)."""
    return [DeliveryRow(id=d.id, received_at=d.received_at, receiver=d.receiver.name if d.receiver else None,
                        source=d.source, event=d.event, named=_named(d), decision=d.decision or d.status,
                        category=_category(d.reason), reason=d.reason or "", rollout_id=d.rollout_id,
                        replay_of=d.replay_of, replayable=bool(d.receiver_id and (d.detail or {}).get("hints"))
                        and d.decision != "pending")
            for d in deliveries]


def _named(d: WebhookDelivery) -> str:
    text = d.repository or ""
    if d.tag:
        text += f":{d.tag}" if text else d.tag
    if d.digest:
        text += f"@{d.digest[:19]}…"
    return text or "—"


def _category(reason: str | None) -> str | None:
    head = (reason or "").split(":", 1)[0]
    return head.replace(" ", "-") if head in CATEGORIES else None
