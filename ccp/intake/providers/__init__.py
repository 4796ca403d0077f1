"""The providers CCP receives releases from, one small module per family, all behind one shape (`Provider`).

| kind         | proves itself with                                        | secret CCP keeps            |
|--------------|-----------------------------------------------------------|-----------------------------|
| github       | X-Hub-Signature-256 (HMAC-SHA256 hex of the body)         | the key, encrypted          |
| gitlab       | X-Gitlab-Token, or Standard Webhooks with a whsec_ token  | token hash / key, encrypted |
| gitea        | X-Forgejo-Signature / X-Gitea-Signature (HMAC hex)        | the key, encrypted          |
| dockerhub    | a long random secret in the URL path (no signature)       | its hash                    |
| distribution | the Authorization header set in `notifications.endpoints` | its hash                    |
| harbor       | the webhook policy's Auth Header (Authorization)          | its hash                    |
| quay         | a long random secret in the URL path (no signature)       | its hash                    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from ccp.intake.events import Inbound, Parsed, Secret
from ccp.intake.providers import distribution, dockerhub, gitea, github, gitlab, harbor, quay

HMAC, TOKEN, PATH = "hmac", "token", "path"


@dataclass(frozen=True)
class Provider:
    """How one kind of sender is verified and read.

    `verify(secret, inbound)` raises Unauthorized unless the delivery proves it knows the secret;
    `parse(headers, payload)` reads a verified JSON body into a Parsed (raises BadPayload for a malformed one);
    `secret_form(secret)` says how a secret given for this kind is kept: HMAC (key encrypted), TOKEN (hash of a
    token sent in a header) or PATH (hash of a token in the URL path)."""

    kind: str
    label: str
    verify: Callable[[Secret, Inbound], None]
    parse: Callable[[Mapping[str, str], dict], Parsed]
    secret_form: Callable[[str], str]


def _always(form: str) -> Callable[[str], str]:
    return lambda secret: form


PROVIDERS: dict[str, Provider] = {
    "github": Provider("github", "GitHub / GHCR", github.verify, github.parse, _always(HMAC)),
    "gitlab": Provider("gitlab", "GitLab", gitlab.verify, gitlab.parse, gitlab.secret_form),
    "gitea": Provider("gitea", "Gitea / Forgejo", gitea.verify, gitea.parse, _always(HMAC)),
    "dockerhub": Provider("dockerhub", "Docker Hub", dockerhub.verify, dockerhub.parse, _always(PATH)),
    "distribution": Provider("distribution", "Docker Distribution registry", distribution.verify,
                             distribution.parse, _always(TOKEN)),
    "harbor": Provider("harbor", "Harbor", harbor.verify, harbor.parse, _always(TOKEN)),
    "quay": Provider("quay", "Quay", quay.verify, quay.parse, _always(PATH)),
}


def provider(kind: str) -> Provider:
    """The Provider of a receiver kind (KeyError for an unknown kind: kinds are checked when a receiver is saved)."""
    return PROVIDERS[kind]
