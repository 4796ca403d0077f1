"""Deliveries as each provider documents them, written by hand from the providers' documentation (trimmed to the
fields CCP reads plus a few it must ignore), and signed the way each provider signs - with hashlib/hmac, from the
documented scheme, never with CCP's own code.

Sources: GitHub "Webhook events and payloads" (release, push, package, registry_package) and "Validating webhook
deliveries" (X-Hub-Signature-256); GitLab "Webhook events" (Tag Push Hook, Release Hook) and the signing-token MR
(Standard Webhooks headers); Gitea/Forgejo webhook docs (X-Gitea-Signature, release/push/create/package);
Docker Hub "Webhooks" example payload; CNCF Distribution "Work with notifications" (envelope, events[], target);
Harbor "Configure Webhook Notifications" (PUSH_ARTIFACT, Auth Header, CloudEvents format); Red Hat Quay
"Repository Notifications" (Repository Push).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from tests.webhook_signing import signed_headers

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64


def body(payload: dict) -> bytes:
    return json.dumps(payload).encode()


# --- GitHub ------------------------------------------------------------------------------------------------------

def github_headers(secret: str, raw: bytes, event: str, delivery: str | None = None) -> dict:
    """X-GitHub-Event, X-GitHub-Delivery (a GUID) and X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>."""
    return {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/abc1234", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "X-GitHub-Hook-ID": "292430182",
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}


def github_release(tag: str, repo: str = "Acme/App", action: str = "published", draft: bool = False) -> dict:
    return {"action": action, "release": {"id": 1, "tag_name": tag, "name": f"Release {tag}", "draft": draft,
                                          "prerelease": "-" in tag, "target_commitish": "main",
                                          "html_url": f"https://github.com/{repo}/releases/tag/{tag}"},
            "repository": {"id": 42, "name": repo.split("/")[1], "full_name": repo, "private": False},
            "sender": {"login": "octocat"}}


def github_push(ref: str, repo: str = "Acme/App", deleted: bool = False) -> dict:
    return {"ref": ref, "before": "0" * 40, "after": "1" * 40, "created": not deleted, "deleted": deleted,
            "repository": {"full_name": repo, "name": repo.split("/")[1]}, "pusher": {"name": "octocat"}}


def github_package(tag: str, digest: str, repo: str | None = "Acme/App", event: str = "package") -> dict:
    """A GHCR container version; `tag` "" for an untagged platform manifest of a multi-arch push."""
    pkg = {"id": 7, "name": "app", "namespace": "acme", "ecosystem": "CONTAINER",
           "package_type": "CONTAINER" if event == "registry_package" else "container",
           "owner": {"login": "acme"}, "html_url": "https://github.com/orgs/acme/packages/container/package/app",
           "package_version": {"id": 99, "version": digest, "name": digest,
                               "container_metadata": {"tag": {"name": tag, "digest": digest},
                                                      "labels": {}, "manifest": {}},
                               "package_url": f"ghcr.io/acme/app:{tag or digest}"},
           "registry": {"name": "GitHub CONTAINER registry", "url": "https://ghcr.io/acme"}}
    out = {"action": "published", event: pkg, "sender": {"login": "octocat"}}
    if repo:
        out["repository"] = {"full_name": repo}
    return out


# --- GitLab ------------------------------------------------------------------------------------------------------

def gitlab_headers(token: str | None, event: str, uuid_: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event, "User-Agent": "GitLab/17.5.0",
               "X-Gitlab-Event-UUID": uuid_ or str(uuid.uuid4()), "X-Gitlab-Instance": "https://gitlab.example.com"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return headers


def gitlab_signed_headers(signing_token: str, raw: bytes, event: str, delivery: str, timestamp=None) -> dict:
    """GitLab with a signing token: Standard Webhooks headers; webhook-id equals the Idempotency-Key."""
    signed = signed_headers(signing_token, raw, delivery, timestamp=timestamp)
    return {**gitlab_headers(None, event), **signed, "Idempotency-Key": delivery}


def gitlab_tag_push(tag: str, project: str = "acme/app", deleted: bool = False) -> dict:
    return {"object_kind": "tag_push", "event_name": "tag_push", "before": "0" * 40,
            "after": "0" * 40 if deleted else "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", "ref": f"refs/tags/{tag}",
            "checkout_sha": None if deleted else "82b3d5ae", "user_name": "John Smith", "project_id": 1,
            "project": {"id": 1, "name": "App", "path_with_namespace": project, "default_branch": "main"},
            "commits": [], "total_commits_count": 0}


def gitlab_release(tag: str, action: str = "create", project: str = "acme/app") -> dict:
    return {"object_kind": "release", "id": 1, "tag": tag, "name": f"Release {tag}", "action": action,
            "released_at": "2026-01-01T00:00:00Z", "description": "",
            "project": {"id": 1, "name": "App", "path_with_namespace": project},
            "url": f"https://gitlab.example.com/{project}/-/releases/{tag}"}


# --- Gitea / Forgejo ---------------------------------------------------------------------------------------------

def gitea_headers(secret: str, raw: bytes, event: str, forgejo: bool = False, delivery: str | None = None) -> dict:
    """Gitea sends X-Gitea-*; Forgejo sends X-Forgejo-* (and the X-Gitea-* ones as well); hex HMAC, no prefix."""
    sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    delivery = delivery or str(uuid.uuid4())
    headers = {"Content-Type": "application/json", "X-Gitea-Event": event, "X-Gitea-Delivery": delivery,
               "X-Gitea-Signature": sig}
    if forgejo:
        headers = {"Content-Type": "application/json", "X-Forgejo-Event": event, "X-Forgejo-Delivery": delivery,
                   "X-Forgejo-Signature": sig}
    return headers


def gitea_release(tag: str, repo: str = "acme/app", action: str = "published") -> dict:
    return {"action": action, "release": {"id": 3, "tag_name": tag, "name": tag, "draft": False,
                                          "prerelease": False},
            "repository": {"id": 5, "name": "app", "full_name": repo}, "sender": {"login": "gitea"}}


def gitea_create_tag(tag: str, repo: str = "acme/app") -> dict:
    return {"sha": "1" * 40, "ref": tag, "ref_type": "tag", "repository": {"full_name": repo}}


# --- registries --------------------------------------------------------------------------------------------------

def dockerhub_push(tag: str, repo: str = "acme/app") -> dict:
    """Docker Hub's documented payload (callback_url carries a token: CCP must neither call nor keep it)."""
    return {"callback_url": f"https://registry.hub.docker.com/u/{repo}/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
            "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": tag},
            "repository": {"comment_count": 0, "date_created": 1417494799, "description": "", "is_official": False,
                           "is_private": True, "is_trusted": True, "name": repo.split("/")[1],
                           "namespace": repo.split("/")[0], "owner": "acme", "repo_name": repo,
                           "repo_url": f"https://registry.hub.docker.com/u/{repo}/", "status": "Active"}}


def distribution_event(repo: str, digest: str, tag: str | None = None, action: str = "push",
                       media_type: str = "application/vnd.oci.image.manifest.v1+json") -> dict:
    target = {"mediaType": media_type, "size": 708, "digest": digest, "length": 708, "repository": repo,
              "url": f"http://127.0.0.1:5055/v2/{repo}/manifests/{digest}"}
    if tag:
        target["tag"] = tag
    return {"id": str(uuid.uuid4()), "timestamp": "2026-01-01T00:00:00.000000000Z", "action": action,
            "target": target, "request": {"id": str(uuid.uuid4()), "addr": "127.0.0.1:40000",
                                          "host": "127.0.0.1:5055", "method": "PUT",
                                          "useragent": "docker/27.0 go/go1.22"},
            "actor": {}, "source": {"addr": "registry:5000", "instanceID": str(uuid.uuid4())}}


def distribution_envelope(*events: dict) -> dict:
    return {"events": list(events)}


DISTRIBUTION_TYPE = "application/vnd.docker.distribution.events.v1+json"


def harbor_push(repo_full: str, resources: list[tuple[str | None, str]]) -> dict:
    """PUSH_ARTIFACT, Default format; resources are (tag or None, digest)."""
    namespace, name = repo_full.split("/", 1)
    return {"type": "PUSH_ARTIFACT", "occur_at": 1680501893, "operator": "admin",
            "event_data": {"resources": [{"digest": d, "tag": t or "", "resource_url":
                                          f"harbor.example.com/{repo_full}:{t or d}"} for t, d in resources],
                           "repository": {"date_created": 1680501893, "name": name, "namespace": namespace,
                                          "repo_full_name": repo_full, "repo_type": "private"}}}


def harbor_cloudevent(repo_full: str, tag: str, digest: str) -> dict:
    inner = harbor_push(repo_full, [(tag, digest)])["event_data"]
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/projects/1/webhook/policies/1",
            "type": "harbor.artifact.pushed", "datacontenttype": "application/json", "time": "2026-01-01T00:00:00Z",
            "operator": "admin", "data": inner}


def quay_push(repo: str, tags, namespace: str = "acme") -> dict:
    return {"name": repo.split("/")[1], "repository": repo, "namespace": namespace,
            "docker_url": f"quay.io/{repo}", "homepage": f"https://quay.io/repository/{repo}",
            "updated_tags": tags}
