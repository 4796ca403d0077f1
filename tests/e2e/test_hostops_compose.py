"""ccp.hostops.tenant.TenantHost against real docker compose: pull/up/ps with health, env patch + rollback by
snapshot, the tenant's own upgrade script, a broken image, an unhealthy one and the deadline."""
from __future__ import annotations

import time

from tests.e2e import images
import pytest

tenant_mod = pytest.importorskip("ccp.hostops.tenant", reason="ccp.hostops.tenant not available")
TenantHost = tenant_mod.TenantHost

RESULT_KEYS = {"ok", "exit_code", "signal", "timed_out", "duration_s", "output_tail"}


def wait_ps(host, predicate, timeout: float = 45) -> dict:
    """Poll TenantHost.compose('ps') until predicate(service dict of 'web') holds; returns that dict."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        res = host.compose("ps", deadline_s=30)
        assert res["ok"], res["output_tail"]
        svc = {s["name"]: s for s in res["services"]}.get("web")
        last = svc
        if svc and predicate(svc):
            return svc
        time.sleep(0.5)
    raise AssertionError(f"web did not reach the wanted state within {timeout}s; last ps: {last}")


@pytest.fixture
def tenant(compose_project):
    return compose_project("v1")


@pytest.fixture
def host(tenant, tmp_path):
    return TenantHost(tenant.path, tenant.project, state_dir=tmp_path / f"{tenant.project}-state")


def test_pull_up_ps_healthy(tenant, host):
    pull = host.compose("pull", deadline_s=120)
    assert RESULT_KEYS <= set(pull)
    assert pull["ok"] and pull["exit_code"] == 0 and not pull["timed_out"], pull["output_tail"]
    up = host.compose("up", deadline_s=120)
    assert up["ok"], up["output_tail"]
    svc = wait_ps(host, lambda s: s["health"] == "healthy")
    assert svc["state"] == "running"
    assert svc["image"] == images.image_ref("v1")
    assert svc["exit_code"] == 0
    tenant.wait_http("version v1")


def test_env_patch_upgrade_then_rollback_by_snapshot(tenant, host):
    assert host.compose("up", deadline_s=120)["ok"]
    wait_ps(host, lambda s: s["health"] == "healthy")
    assert "IMAGE_TAG" in host.env_keys()["keys"]

    patch = host.env_patch({"IMAGE_TAG": "v2"}, fence=1)
    assert patch["changed"] == ["IMAGE_TAG"] and patch["snapshot_id"]
    env_text = tenant.env_file.read_text()
    assert "IMAGE_TAG=v2\n" in env_text and f"APP_SECRET={tenant.secret}\n" in env_text  # other lines kept
    assert host.compose("pull", deadline_s=120)["ok"]
    assert host.compose("up", deadline_s=120)["ok"]
    tenant.wait_http("version v2")
    svc = wait_ps(host, lambda s: s["health"] == "healthy" and s["image"].endswith(":v2"))
    assert svc["state"] == "running"

    # roll back: restore the snapshot taken before the patch, compose up, verify
    restored = host.restore_snapshot(patch["snapshot_id"], fence=1)
    assert ".env" in restored["restored"]
    assert "IMAGE_TAG=v1\n" in tenant.env_file.read_text()
    assert host.compose("up", deadline_s=120)["ok"]
    tenant.wait_http("version v1")
    wait_ps(host, lambda s: s["health"] == "healthy" and s["image"].endswith(":v1"))


def test_tenant_upgrade_script_runs_real_compose(tenant, host):
    assert host.compose("up", deadline_s=120)["ok"]
    tenant.wait_http("version v1")
    tenant.set_tag("v2")
    res = host.run_script("upgrade", deadline_s=180)
    assert res["ok"], res["output_tail"]
    tenant.wait_http("version v2")
    assert tenant.secret not in res["output_tail"]


def test_broken_image_shows_exited_with_code(compose_project, tmp_path):
    t = compose_project("broken")
    host = TenantHost(t.path, t.project, state_dir=tmp_path / "state")
    up = host.compose("up", deadline_s=120)
    assert RESULT_KEYS <= set(up)
    svc = wait_ps(host, lambda s: s["state"] == "exited", timeout=30)
    assert svc["exit_code"] == 3
    assert svc["image"] == images.image_ref("broken")


def test_unhealthy_image_reports_unhealthy(compose_project, tmp_path):
    t = compose_project("unhealthy")
    host = TenantHost(t.path, t.project, state_dir=tmp_path / "state")
    assert host.compose("up", deadline_s=120)["ok"]
    svc = wait_ps(host, lambda s: s["health"] == "unhealthy", timeout=45)
    assert svc["state"] == "running"


def test_missing_image_tag_fails_pull(tenant, host):
    tenant.set_tag("does-not-exist")
    pull = host.compose("pull", deadline_s=120)
    assert not pull["ok"] and pull["exit_code"] not in (0, None) and not pull["timed_out"]
    assert "does-not-exist" in pull["output_tail"] or "not found" in pull["output_tail"].lower()


def test_deadline_overrun_is_a_failure(tenant, host):
    res = host.compose("pull", deadline_s=0.05)
    assert res["timed_out"] and not res["ok"]
    assert res["duration_s"] < 10


def test_down_removes_the_project(tenant, host):
    assert host.compose("up", deadline_s=120)["ok"]
    wait_ps(host, lambda s: s["state"] == "running")
    assert host.compose("down", deadline_s=120)["ok"]
    res = host.compose("ps", deadline_s=30)
    assert res["ok"] and res["services"] == []


def _comparable(services: list[dict]) -> list[tuple]:
    return [(s["name"], s["image"], s["state"], s["health"], s["exit_code"] or 0) for s in services]


def test_compose_wait_reads_the_engine_like_compose_ps_and_answers_on_health(tenant, host):
    """The agent's compose/wait looks at the engine API (ms a look) and sees what `compose ps --all` sees: the
    healthy tenant is answered as soon as Docker marks it, a crashed one at once with its exit code."""
    from ccp.agent.waiting import engine_services, wait_for_services

    assert host.compose("up", deadline_s=120)["ok"]
    answer = wait_for_services(tenant.project, 45, lambda: host.compose("ps", 30))
    assert answer["settled"] and answer["source"] == "engine", answer
    assert {s["health"] for s in answer["services"] if s["name"] == "web"} == {"healthy"}
    assert _comparable(answer["services"]) == _comparable(host.compose("ps", 30)["services"])
    t0 = time.monotonic()
    looks = [engine_services(tenant.project) for _ in range(20)]
    assert (time.monotonic() - t0) / 20 < 0.05 and all(look == looks[0] for look in looks)


def test_compose_wait_answers_a_crash_at_once(compose_project, tmp_path):
    from ccp.agent.waiting import wait_for_services

    t = compose_project("broken")
    host = TenantHost(t.path, t.project, state_dir=tmp_path / "state")
    host.compose("up", deadline_s=120)
    answer = wait_for_services(t.project, 30, lambda: host.compose("ps", 30))
    web = {s["name"]: s for s in answer["services"]}["web"]
    assert answer["settled"] and web["state"] == "exited" and web["exit_code"] == 3
