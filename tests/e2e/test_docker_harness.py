"""The e2e harness itself against real Docker: engine, compose plugin, registry, test images, tenant dirs."""
from __future__ import annotations

import subprocess
import time

from tests.e2e import images
import pytest


def test_environment_is_complete(docker_env, test_images):
    assert docker_env["engine"]
    assert docker_env["compose"].lstrip("v").split(".")[0] == "2"
    assert set(test_images) == set(images.TEST_TAGS)
    assert test_images["v1"] == "127.0.0.1:5055/ccp-test/web:v1"
    assert docker_env["network"] in ("bridge", "host")


def test_tenant_dir_files(compose_project):
    t = compose_project("v1")
    compose_text = t.compose_file.read_text()
    assert "image: 127.0.0.1:5055/ccp-test/web:${IMAGE_TAG:-latest}" in compose_text
    env = t.env_file.read_text()
    assert "IMAGE_TAG=v1\n" in env and f"WEB_PORT={t.port}\n" in env and f"APP_SECRET={t.secret}\n" in env
    # compose itself accepts the file and resolves the tag from .env
    proc = t.compose("config", "--format", "json", timeout=30, check=True)
    assert "ccp-test/web:v1" in proc.stdout
    # and refuses it when the secret is missing (a required variable), naming the variable
    t.env_file.write_text(f"IMAGE_TAG=v1\nWEB_PORT={t.port}\n")
    bad = t.compose("config", timeout=30)
    assert bad.returncode != 0 and "APP_SECRET" in bad.stderr


def test_up_v1_then_upgrade_to_v2(compose_project):
    t = compose_project("v1")
    up = t.compose("up", "-d", timeout=120)
    assert up.returncode == 0, up.stderr
    assert "version v1" in t.wait_http("version v1", timeout=30)
    row = t.wait_service(lambda r: r.get("Health") == "healthy", timeout=30)
    assert row["State"] == "running" and row["Image"].endswith(":v1")
    # the secret from .env reaches the container
    env = t.compose("exec", "-T", t.service, "sh", "-c", 'echo "$APP_SECRET"', timeout=30, check=True)
    assert env.stdout.strip() == t.secret

    # the version bump happens only through .env (compose file untouched), as for registered tenants
    before = t.compose_file.read_bytes()
    t.set_tag("v2")
    assert t.compose_file.read_bytes() == before
    pull = t.compose("pull", timeout=120)
    assert pull.returncode == 0, pull.stderr
    up2 = t.compose("up", "-d", timeout=120)
    assert up2.returncode == 0, up2.stderr
    assert "version v2" in t.wait_http("version v2", timeout=30)
    row = t.wait_service(lambda r: r.get("Health") == "healthy", timeout=30)
    assert row["Image"].endswith(":v2")


def test_up_wait_reports_success_for_healthy_service(compose_project):
    t = compose_project("v1")
    proc = t.compose("up", "-d", "--wait", "--wait-timeout", "60", timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert t.service_row()["Health"] == "healthy"


def test_broken_image_exits(compose_project):
    t = compose_project("broken")
    t.compose("up", "-d", timeout=120)  # may or may not report the exit; ps is the truth
    row = t.wait_service(lambda r: r.get("State") == "exited", timeout=30)
    assert row["ExitCode"] == 3
    logs = t.compose("logs", "--no-color", timeout=30).stdout
    assert "exiting with status 3 on purpose" in logs


def test_unhealthy_image_turns_unhealthy(compose_project):
    t = compose_project("unhealthy")
    up = t.compose("up", "-d", timeout=120)
    assert up.returncode == 0, up.stderr
    t0 = time.monotonic()
    row = t.wait_service(lambda r: r.get("Health") == "unhealthy", timeout=45)
    assert row["State"] == "running"
    assert time.monotonic() - t0 < 45
    # it does serve its page: only the health check fails
    assert "version unhealthy" in t.wait_http("version unhealthy", timeout=10)
    # `up --wait` reports the failure with a non-zero exit
    waited = t.compose("up", "-d", "--wait", "--wait-timeout", "20", timeout=60)
    assert waited.returncode != 0


def test_same_tag_new_digest_quick_upgrade(compose_project, registry_tag):
    """Quick Upgrade scenario: the tag stays, the image behind it changes; pull + up picks it up."""
    tag = registry_tag("rolling-a")
    t = compose_project(tag)
    assert t.compose("up", "-d", timeout=120).returncode == 0
    t.wait_http("version rolling-a")
    digest_b = images.push_web_image(tag, "rolling-b")
    assert digest_b
    assert t.compose("pull", timeout=120).returncode == 0
    up = t.compose("up", "-d", timeout=120)
    assert up.returncode == 0, up.stderr
    t.wait_http("version rolling-b")


def test_teardown_helper_removes_containers(compose_project):
    t = compose_project("v1")
    assert t.compose("up", "-d", timeout=120).returncode == 0
    assert t.ps()
    assert t.down().returncode == 0
    assert t.ps() == []
    names = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={t.project}", "-q"],
        check=False, capture_output=True, text=True, timeout=30,
    ).stdout.split()
    assert names == []


@pytest.mark.parametrize("tag", ["v1", "v2"])
def test_images_serve_their_version_on_custom_port(docker_env, test_images, tag):
    """The web image listens on $PORT (host-network fallback relies on it)."""
    port = images.free_port()
    name = f"ccpe2e-port-{tag}-{port}"
    run = subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}", test_images[tag]],
        check=False, capture_output=True, text=True, timeout=60,
    )
    try:
        assert run.returncode == 0, run.stderr
        assert f"version {tag}" in images.wait_for_http(f"http://127.0.0.1:{port}/version.txt", f"version {tag}")
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True, timeout=60)
