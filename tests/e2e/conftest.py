"""e2e tier: real Docker engine + compose v2 plugin + local registry (see docs/testing.md).

Every test under tests/e2e is marked ``e2e`` and depends on the session fixture ``docker_env``. When the engine,
the compose plugin, the registry or the test images are missing:

* locally: the tests are skipped with the reason (pytest -ra prints it; run ``bash .ci/docker-up.sh``),
* with CI=true: they FAIL loudly, unless CCP_E2E_SKIP_REASON is set (what .ci/run does when docker-up.sh
  exits 3 with "DOCKER UNAVAILABLE: ..."), in which case they are skipped with that reason.

Helpers for other e2e tests live in ``images.py`` next to this file (``from tests.e2e.images import make_tenant_dir``).
The skip-or-fail policy is shared with the browser tier (``tests/tiers.py``).
"""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from ccp.services.instances import create_instance
from tests.e2e import images
from tests.e2e import upgrade_helpers as uh
from tests.tiers import mark_tier, tier_unavailable

HERE = Path(__file__).resolve().parent

SKIP_ENV = "CCP_E2E_SKIP_REASON"


def unavailable(reason: str, *, skip_env: str = SKIP_ENV, fix: str = "run: bash .ci/docker-up.sh"):
    """Skip (locally, or when CI deliberately sets ``skip_env``) or fail loudly (CI)."""
    tier_unavailable("e2e", reason, skip_env=skip_env, fix=fix)


def pytest_collection_modifyitems(config, items):
    mark_tier(items, HERE, pytest.mark.e2e)


def _check(cmd: list[str], timeout: float = 20) -> tuple[bool, str]:
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return False, f"{cmd[0]} not found"
    except subprocess.TimeoutExpired:
        return False, f"`{' '.join(cmd)}` timed out after {timeout}s"
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return False, f"`{' '.join(cmd)}` exit {proc.returncode}: {out.splitlines()[-1] if out else ''}"
    return True, out


def probe_docker_env(registry: str = images.REGISTRY) -> tuple[dict, str | None]:
    """Returns (info, reason); reason is None when everything the e2e tier needs works."""
    info: dict = {"registry": registry}
    ok, out = _check(["docker", "version", "--format", "{{.Server.Version}}"])
    if not ok:
        return info, f"Docker engine not reachable ({out})"
    info["engine"] = out
    ok, out = _check(["docker", "compose", "version", "--short"])
    if not ok:
        return info, f"docker compose plugin missing ({out})"
    info["compose"] = out
    tags = images.registry_tags(registry)
    if not tags:
        return info, f"registry http://{registry}/v2/ not answering or has no {images.REPOSITORY} images"
    missing = sorted(set(images.TEST_TAGS) - tags)
    if missing:
        return info, f"registry {registry} lacks test images {images.REPOSITORY}:{','.join(missing)}"
    info["tags"] = sorted(tags)
    info["network"] = images.network_mode()
    return info, None


@pytest.fixture(scope="session")
def docker_env() -> dict:
    """Engine + compose + registry + test images, or skip/fail per the policy above. Returns facts."""
    info, reason = probe_docker_env()
    if reason:
        unavailable(reason)
    return info


@pytest.fixture(autouse=True)
def _e2e_requires_docker(docker_env):
    """autouse in this directory only: every e2e test needs the engine (or is skipped/failed per policy)."""


@pytest.fixture(scope="session")
def registry(docker_env) -> str:
    """host:port of the local registry (127.0.0.1:5055)."""
    return docker_env["registry"]


@pytest.fixture(scope="session")
def test_images(registry) -> dict[str, str]:
    """tag -> full image ref, e.g. {"v1": "127.0.0.1:5055/ccp-test/web:v1", ...}."""
    return images.test_image_refs(registry)


@pytest.fixture
def compose_project(docker_env, tmp_path):
    """Factory: ``compose_project(tag="v1", **make_tenant_dir_kwargs) -> images.ComposeTenant``.

    Each call writes a tenant dir (docker-compose.yml, .env with IMAGE_TAG and APP_SECRET, a published
    127.0.0.1 port, a health check) under tmp_path with a unique project name. Nothing is started; call
    ``tenant.compose("up", "-d")``. Teardown runs ``docker compose down -v --remove-orphans`` (timeout 90 s).
    """
    created: list[images.ComposeTenant] = []

    def factory(tag: str = "v1", **kwargs) -> images.ComposeTenant:
        project = kwargs.pop("project", None) or f"ccpe2e-{uuid.uuid4().hex[:10]}"
        path = kwargs.pop("path", None) or tmp_path / project
        tenant = images.ComposeTenant(
            images.make_tenant_dir(path, tag, kwargs.pop("port", None), project=project, **kwargs)
        )
        created.append(tenant)
        return tenant

    yield factory
    images.down_all(created, "compose_project")


@pytest.fixture
def registry_tag(registry):
    """Factory for throwaway tags in the local registry (deleted again at teardown):
    ``registry_tag(version, kind="web") -> tag``. Re-push the same tag with new content via
    ``images.push_web_image(tag, other_version)`` to model a Quick Upgrade (same tag, new digest)."""
    tags: list[str] = []

    def factory(version: str, kind: str = "web", tag: str | None = None) -> str:
        tag = tag or f"tmp-{uuid.uuid4().hex[:10]}"
        images.push_web_image(tag, version, kind=kind, registry=registry)
        tags.append(tag)
        return tag

    yield factory
    for tag in tags:
        images.delete_registry_tag(tag, registry)
        subprocess.run(
            ["docker", "rmi", "-f", images.image_ref(tag, registry)], check=False, capture_output=True, timeout=60
        )


# --- tenants on real Docker for the upgrade and rollout modules -----------------------------------------------

@pytest.fixture
def app_env(app_env):
    """The conftest environment plus the e2e template set, a short monitor window and a real step deadline."""
    return {**app_env, "CCP_TEMPLATE_SETS_DIR": str(uh.SETS_DIR), "CCP_MONITOR_WINDOW_S": uh.MONITOR_WINDOW_S,
            "CCP_STEP_DEADLINE_S": uh.STEP_DEADLINE_S}


@pytest.fixture
def real_tenant(app, tmp_path):
    """Factory: `real_tenant(registered=False, skip_files=(), start=True)` -> (RealTenant, Instance) at v1.

    Teardown: compose down -v --remove-orphans (timeout 90 s), agent stopped.
    """
    made: list[uh.RealTenant] = []

    def make(registered: bool = False, skip_files: tuple[str, ...] = (), start: bool = True):
        t = uh.make_real_tenant(tmp_path, registered=registered, skip_files=skip_files)
        made.append(t)
        inst = create_instance(uh.instance_data(t), actor="test")
        t.instance_id = inst.id
        if start:
            t.up()
            uh.wait_healthy(t.install_dir, t.project)
            uh.wait_page(t.url, "v1")
        return t, inst

    yield make
    for t in made:
        t.agent.stop()
    images.down_all(made, "real_tenant")
