"""Each provider module against its documented payloads and signature scheme (tests/intake/payloads.py): what a
verified delivery means (its hints), what is no release, and that a wrong, missing or re-dated signature is
refused. Unit tests: no database, no network."""

from __future__ import annotations

import base64
import time

import pytest

from ccp.intake.events import BadPayload, Hint, Inbound, Secret, Unauthorized, signing_key, token_sha256
from ccp.intake.providers import PROVIDERS, provider
from tests.intake import payloads as P

KEY = "a-forge-secret-of-some-length-0123"
TOKEN = "a-registry-token-of-some-length-0123"
WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
HMAC_SECRET = Secret(hmac_key=KEY.encode())
TOKEN_SECRET = Secret(token_sha256=token_sha256(TOKEN))


def _check(kind: str, secret: Secret, headers: dict, raw: bytes, path_secret: str | None = None):
    """Verify then parse, as the intake does."""
    p = provider(kind)
    p.verify(secret, Inbound(headers, raw, path_secret))
    import json

    return p.parse(headers, json.loads(raw))


# --- GitHub / GHCR -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload, event, hint", [
    (P.github_release("v1.2.3"), "release", Hint("acme/app", "v1.2.3")),
    (P.github_push("refs/tags/v1.2.3"), "push", Hint("acme/app", "v1.2.3")),
    (P.github_package("1.2.3", P.DIGEST_A), "package", Hint("acme/app", "1.2.3", P.DIGEST_A)),
    (P.github_package("", P.DIGEST_B), "package", Hint("acme/app", None, P.DIGEST_B)),  # multi-arch: digest only
    (P.github_package("1.2.3", P.DIGEST_A, event="registry_package"), "registry_package",
     Hint("acme/app", "1.2.3", P.DIGEST_A)),
    (P.github_package("1.2.3", P.DIGEST_A, repo=None), "package", Hint("acme/app", "1.2.3", P.DIGEST_A)),
])
def test_github_release_events_are_hints(payload, event, hint):
    raw = P.body(payload)
    parsed = _check("github", HMAC_SECRET, P.github_headers(KEY, raw, event, "d-1"), raw)
    assert parsed.hints == (hint,) and parsed.ignored is None and parsed.delivery_id == "d-1"


@pytest.mark.parametrize("payload, event, why", [
    ({"zen": "Keep it simple.", "hook_id": 1}, "ping", "ping"),
    (P.github_release("v1", action="created"), "release", "only published"),
    (P.github_release("v1", draft=True), "release", "draft"),
    (P.github_push("refs/heads/main"), "push", "not a tag"),
    (P.github_push("refs/tags/v1", deleted=True), "push", "deleted"),
    (P.github_push("refs/tags/release/1.0"), "push", "not a valid image tag"),
    ({**P.github_package("1", P.DIGEST_A), "action": "updated"}, "package", "only published"),
    ({"action": "opened", "issue": {}}, "issues", "not a release event"),
])
def test_github_events_that_are_no_release(payload, event, why):
    raw = P.body(payload)
    parsed = _check("github", HMAC_SECRET, P.github_headers(KEY, raw, event), raw)
    assert parsed.hints == () and why in parsed.ignored


def test_github_npm_packages_are_not_images():
    payload = P.github_package("1.0.0", P.DIGEST_A)
    payload["package"]["package_type"] = "npm"
    raw = P.body(payload)
    assert "not a container image" in _check("github", HMAC_SECRET, P.github_headers(KEY, raw, "package"), raw).ignored


@pytest.mark.parametrize("tamper", ["other secret", "other body", "no header", "sha1 header", "upper hex"])
def test_github_refuses_a_wrong_signature(tamper):
    raw = P.body(P.github_release("v1"))
    headers = P.github_headers("another-secret-entirely-000" if tamper == "other secret" else KEY, raw, "release")
    if tamper == "other body":
        raw = P.body(P.github_release("v9"))
    elif tamper == "no header":
        del headers["X-Hub-Signature-256"]
    elif tamper == "sha1 header":
        headers["X-Hub-Signature"] = "sha1=" + "0" * 40
        del headers["X-Hub-Signature-256"]
    elif tamper == "upper hex":
        headers["X-Hub-Signature-256"] = "sha256=" + "F" * 64
    with pytest.raises(Unauthorized):
        provider("github").verify(HMAC_SECRET, Inbound(headers, raw))


# --- GitLab --------------------------------------------------------------------------------------------------------

def test_gitlab_tag_push_and_release_with_the_secret_token():
    for payload, event, hint in [(P.gitlab_tag_push("v2.0.0"), "Tag Push Hook", Hint("acme/app", "v2.0.0")),
                                 (P.gitlab_release("v2.0.0"), "Release Hook", Hint("acme/app", "v2.0.0"))]:
        raw = P.body(payload)
        parsed = _check("gitlab", TOKEN_SECRET, P.gitlab_headers(TOKEN, event, "uuid-1"), raw)
        assert parsed.hints == (hint,) and parsed.delivery_id == "uuid-1"


@pytest.mark.parametrize("payload, why", [
    (P.gitlab_tag_push("v1", deleted=True), "deleted"),
    (P.gitlab_release("v1", action="update"), "only new releases"),
    ({"object_kind": "push", "ref": "refs/heads/main", "project": {"path_with_namespace": "acme/app"}}, "not a release"),
])
def test_gitlab_events_that_are_no_release(payload, why):
    raw = P.body(payload)
    assert why in _check("gitlab", TOKEN_SECRET, P.gitlab_headers(TOKEN, "x"), raw).ignored


@pytest.mark.parametrize("token", [None, "", "wrong-token-of-some-length-000", TOKEN + "x", TOKEN.upper()])
def test_gitlab_refuses_a_wrong_token(token):
    raw = P.body(P.gitlab_tag_push("v1"))
    with pytest.raises(Unauthorized):
        provider("gitlab").verify(TOKEN_SECRET, Inbound(P.gitlab_headers(token, "Tag Push Hook"), raw))


def test_gitlab_signing_token_is_standard_webhooks_with_a_time_window():
    secret = Secret(hmac_key=signing_key(WHSEC))
    raw = P.body(P.gitlab_release("v3.0.0"))
    headers = P.gitlab_signed_headers(WHSEC, raw, "Release Hook", "idem-1")
    assert _check("gitlab", secret, headers, raw).hints == (Hint("acme/app", "v3.0.0"),)
    assert provider("gitlab").parse(headers, {"object_kind": "release"}).delivery_id == "idem-1"
    stale = P.gitlab_signed_headers(WHSEC, raw, "Release Hook", "idem-1", timestamp=int(time.time()) - 600)
    replayed = {**headers, "webhook-id": "idem-2"}  # the same signature under a new id
    plain = {**P.gitlab_headers(WHSEC, "Release Hook")}  # the token sent as a plain X-Gitlab-Token
    for bad in (stale, replayed, plain):
        with pytest.raises(Unauthorized):
            provider("gitlab").verify(secret, Inbound(bad, raw))


# --- Gitea / Forgejo ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("forgejo", [False, True], ids=["gitea", "forgejo"])
def test_gitea_and_forgejo_release_push_and_create(forgejo):
    for payload, event in [(P.gitea_release("v1.4.0"), "release"), (P.github_push("refs/tags/v1.4.0", "acme/app"),
                                                                     "push"), (P.gitea_create_tag("v1.4.0"), "create")]:
        raw = P.body(payload)
        parsed = _check("gitea", HMAC_SECRET, P.gitea_headers(KEY, raw, event, forgejo, "g-1"), raw)
        assert parsed.hints == (Hint("acme/app", "v1.4.0"),) and parsed.delivery_id == "g-1"


def test_gitea_container_packages_and_refusals():
    pkg = {"action": "created", "package": {"type": "container", "name": "app", "version": "1.5.0",
                                            "owner": {"login": "acme"}}}
    raw = P.body(pkg)
    assert _check("gitea", HMAC_SECRET, P.gitea_headers(KEY, raw, "package"), raw).hints == (Hint("acme/app", "1.5.0"),)
    headers = P.gitea_headers("wrong-secret-of-some-length-00", raw, "package")
    for bad in (headers, {k: v for k, v in P.gitea_headers(KEY, raw, "package").items() if "Signature" not in k}):
        with pytest.raises(Unauthorized):
            provider("gitea").verify(HMAC_SECRET, Inbound(bad, raw))


# --- Docker Hub and Quay: the secret is in the URL -----------------------------------------------------------------

def test_dockerhub_push_and_its_url_secret():
    raw = P.body(P.dockerhub_push("1.2.3"))
    parsed = _check("dockerhub", TOKEN_SECRET, {"Content-Type": "application/json"}, raw, path_secret=TOKEN)
    assert parsed.hints == (Hint("acme/app", "1.2.3"),) and parsed.delivery_id is None
    for wrong in (None, "", TOKEN[:-1], TOKEN + "0"):
        with pytest.raises(Unauthorized):
            provider("dockerhub").verify(TOKEN_SECRET, Inbound({}, raw, wrong))


@pytest.mark.parametrize("tags", [["1.2.3", "latest"], {"1.2.3": "b750fe79", "latest": "b750fe79"}],
                         ids=["list (Quay 3)", "dict (older Quay)"])
def test_quay_repository_push(tags):
    raw = P.body(P.quay_push("acme/app", tags))
    parsed = _check("quay", TOKEN_SECRET, {}, raw, path_secret=TOKEN)
    assert parsed.hints == (Hint("acme/app", "1.2.3"), Hint("acme/app", "latest"))


# --- Distribution notifications ----------------------------------------------------------------------------------

def test_distribution_envelope_keeps_manifest_pushes_only():
    layer = P.distribution_event("acme/app", P.DIGEST_C, media_type="application/vnd.oci.image.layer.v1.tar+gzip")
    platform = P.distribution_event("acme/app", P.DIGEST_A)
    index = P.distribution_event("acme/app", P.DIGEST_B, "v1.2.3", media_type="application/vnd.oci.image.index.v1+json")
    pull = P.distribution_event("acme/app", P.DIGEST_B, "v1.2.3", action="pull")
    raw = P.body(P.distribution_envelope(layer, platform, index, pull))
    headers = {"Content-Type": P.DISTRIBUTION_TYPE, "Authorization": f"Bearer {TOKEN}"}
    parsed = _check("distribution", TOKEN_SECRET, headers, raw)
    assert parsed.hints == (Hint("acme/app", None, P.DIGEST_A), Hint("acme/app", "v1.2.3", P.DIGEST_B))
    assert parsed.delivery_id == layer["id"]
    only_pulls = _check("distribution", TOKEN_SECRET, headers, P.body(P.distribution_envelope(pull, layer)))
    assert "no manifest push" in only_pulls.ignored and only_pulls.keep is False  # noise: not stored


@pytest.mark.parametrize("auth", [None, "Bearer", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "bearer wrong"])
def test_distribution_refuses_another_authorization(auth):
    raw = P.body(P.distribution_envelope(P.distribution_event("acme/app", P.DIGEST_A, "v1")))
    headers = {"Authorization": auth} if auth else {}
    with pytest.raises(Unauthorized):
        provider("distribution").verify(TOKEN_SECRET, Inbound(headers, raw))


def test_distribution_without_events_is_a_bad_payload():
    with pytest.raises(BadPayload):
        provider("distribution").parse({}, {"events": "nope"})


# --- Harbor --------------------------------------------------------------------------------------------------------

def test_harbor_push_artifact_default_and_cloudevents():
    raw = P.body(P.harbor_push("library/app", [("v1.2.3", P.DIGEST_A), (None, P.DIGEST_B)]))
    headers = {"Content-Type": "application/json", "Authorization": TOKEN}  # Harbor sends the Auth Header as is
    parsed = _check("harbor", TOKEN_SECRET, headers, raw)
    assert parsed.hints == (Hint("library/app", "v1.2.3", P.DIGEST_A), Hint("library/app", None, P.DIGEST_B))
    cloud = P.body(P.harbor_cloudevent("library/app", "v1.2.4", P.DIGEST_C))
    assert _check("harbor", TOKEN_SECRET, headers, cloud).hints == (Hint("library/app", "v1.2.4", P.DIGEST_C),)
    pulled = P.body({**P.harbor_push("library/app", [("v1", P.DIGEST_A)]), "type": "PULL_ARTIFACT"})
    assert "not an artifact push" in _check("harbor", TOKEN_SECRET, headers, pulled).ignored
    with pytest.raises(Unauthorized):
        provider("harbor").verify(TOKEN_SECRET, Inbound({"Authorization": "wrong"}, raw))


def test_every_kind_has_a_provider():
    from ccp.models import RECEIVER_KINDS

    assert set(PROVIDERS) == set(RECEIVER_KINDS)
