"""What the agent tells about its host for the fleet scans: the clock, free disk per install dir, and the digests
of the images a tenant's containers run (the real engine's answer is checked on the Docker tier, in
tests/e2e/test_scans_real.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ccp.agent.runtime import disk_free, split_reference


def test_health_tells_the_host_clock_and_free_disk(client, world):
    before = datetime.now(timezone.utc)
    status, body = client.request("GET", "/v1/health")
    after = datetime.now(timezone.utc)
    assert status == 200 and "images.digests" in body["capabilities"]
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= datetime.fromisoformat(body["time"]) <= after
    free = body["instance_details"]["acme"]["disk_free_bytes"]
    assert isinstance(free, int) and free > 0
    assert abs(free - disk_free(world / "tenant")) < 512 * 1024 ** 2  # the same file system, give or take writes


def test_free_disk_of_a_dir_not_made_yet_is_its_file_system(tmp_path):
    later = disk_free(tmp_path / "not" / "yet")
    assert later is not None and abs(later - disk_free(tmp_path)) < 64 * 1024 ** 2


def test_images_on_the_dry_run_runtime_are_none_and_unknown_tenants_404(dry_client):
    status, body = dry_client.request("GET", "/v1/instances/acme/images")
    assert (status, body) == (200, {"image_digests": {}})
    status, body = dry_client.request("GET", "/v1/instances/nope/images")
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(("ref", "parts"), [
    ("nginx", ("nginx", "latest")), ("nginx:1.27", ("nginx", "1.27")),
    ("127.0.0.1:5055/team/web", ("127.0.0.1:5055/team/web", "latest")),
    ("127.0.0.1:5055/team/web:v2", ("127.0.0.1:5055/team/web", "v2")),
    ("ghcr.io/acme/app:v1@sha256:" + "a" * 64, ("ghcr.io/acme/app", "v1")),
])
def test_references_split_into_repository_and_tag(ref, parts):
    assert split_reference(ref) == parts
