"""The registry client against registries on real sockets: the fake one (bearer flow, pages, ages, indexes) and,
when the e2e tier's local registry answers, the real docker-registry on 127.0.0.1:5055."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timezone

import pytest

from ccp.intake.registry import ImageRef, RegistryClient, RegistryError


@pytest.mark.parametrize("text, host, path, scheme", [
    ("ghcr.io/acme/app", "ghcr.io", "acme/app", "https"),
    ("nginx", "registry-1.docker.io", "library/nginx", "https"),
    ("docker.io/acme/app", "registry-1.docker.io", "acme/app", "https"),
    ("acme/app", "registry-1.docker.io", "acme/app", "https"),
    ("127.0.0.1:5055/ccp-test/web", "127.0.0.1:5055", "ccp-test/web", "http"),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", "http"),
    ("registry.gitlab.com/group/sub/proj", "registry.gitlab.com", "group/sub/proj", "https"),
])
def test_image_references(text, host, path, scheme):
    assert ImageRef.parse(text) == ImageRef(host, path, scheme)


@pytest.mark.parametrize("text", ["", "ghcr.io/acme/app:v1", "ghcr.io/acme/app@sha256:" + "a" * 64,
                                  "https://ghcr.io/acme/app", "Acme/App", "acme//app", "acme/app\n", "a" * 300])
def test_malformed_image_references(text):
    with pytest.raises(ValueError):
        ImageRef.parse(text)


def test_digest_tags_and_age_anonymously(fake_registry):
    reg = fake_registry()
    built = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    digest = reg.push("acme/app", "v1.2.0", created=built)
    client = RegistryClient(ImageRef.parse(reg.image("acme/app")))
    assert client.digest("v1.2.0") == digest and client.digest("v9") is None
    assert client.tags() == ["v1.2.0"] and client.created(digest) == built


def test_a_multi_arch_index_is_one_digest_and_its_age_is_the_amd64_image(fake_registry):
    reg = fake_registry()
    arm = reg.push("acme/app", None, created=datetime(2026, 1, 1, tzinfo=timezone.utc), content="arm")
    amd = reg.push("acme/app", None, created=datetime(2026, 2, 2, tzinfo=timezone.utc), content="amd")
    index = reg.push_index("acme/app", "v2.0.0", {"linux/arm64": arm, "linux/amd64": amd})
    client = RegistryClient(ImageRef.parse(reg.image("acme/app")))
    assert client.digest("v2.0.0") == index
    assert client.created(index) == datetime(2026, 2, 2, tzinfo=timezone.utc)


def test_bearer_challenge_with_credentials_and_without(fake_registry):
    reg = fake_registry(auth=("robot", "s3cret-pull-token"))
    digest = reg.push("acme/app", "v1.0.0")
    ref = ImageRef.parse(reg.image("acme/app"))
    assert RegistryClient(ref, "robot", "s3cret-pull-token").digest("v1.0.0") == digest
    assert any(path == "/token" for _, path, _ in reg.requests)
    with pytest.raises(RegistryError, match="token service .* refused") as caught:
        RegistryClient(ref).digest("v1.0.0")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(RegistryError):
        RegistryClient(ref, "robot", "wrong").digest("v1.0.0")
    anonymous = fake_registry(auth="anonymous")
    anonymous.push("acme/app", "v1.0.0")
    assert RegistryClient(ImageRef.parse(anonymous.image("acme/app"))).tags() == ["v1.0.0"]


def test_tag_pages_are_followed(fake_registry):
    reg = fake_registry(page_size=2)
    for n in range(5):
        reg.push("acme/app", f"v1.{n}.0")
    assert sorted(RegistryClient(ImageRef.parse(reg.image("acme/app"))).tags()) == [f"v1.{n}.0" for n in range(5)]


def test_a_registry_without_the_digest_header_is_hashed(fake_registry):
    reg = fake_registry()
    digest = reg.push("acme/app", "v1.0.0")
    reg.omit_digest_header = True
    assert RegistryClient(ImageRef.parse(reg.image("acme/app"))).digest("v1.0.0") == digest


def test_an_unreachable_registry_is_a_registry_error(fake_registry):
    reg = fake_registry()
    ref = ImageRef.parse(reg.image("acme/app"))
    reg.close()
    with pytest.raises(RegistryError, match="unreachable"):
        RegistryClient(ref, timeout=(0.5, 0.5)).digest("v1")


def _local_registry() -> bool:
    try:
        urllib.request.urlopen("http://127.0.0.1:5055/v2/", timeout=1)
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _local_registry(), reason="the local registry (bash .ci/docker-up.sh) is not running")
def test_the_real_local_registry():
    client = RegistryClient(ImageRef.parse("127.0.0.1:5055/ccp-test/web"))
    assert {"v1", "v2"} <= set(client.tags())
    digest = client.digest("v2")
    assert digest.startswith("sha256:") and client.digest("v2") == digest
    assert client.created(digest) is not None
