"""Upgrade to Release on a REAL Docker engine: CCP service layer -> RQ job (real worker) -> real agent (signed HTTP,
compose autodetected) -> `docker compose` -> containers from the local registry (tests/e2e/images.py).

Each tenant is rendered from the tiny e2e-web set (tests/e2e/sets/e2e-web: web follows IMAGE_TAG, a sidecar pinned to
v1, a bind-mounted config file, health checks, restart unless-stopped), started at v1 with plain `docker compose up`,
and registered in CCP with health_urls = [its page]. Monitor window 2 s, step deadline 60 s.

Databases: the conftest parametrises `app` over SQLite and PostgreSQL. Scenarios whose database behaviour is the
point (one active upgrade per tenant, the claim of a job by two workers, the recorded steps) run on both; the
docker-heavy scenarios whose DB side is identical to the fake-runtime service tests (tests/upgrades/, which run on
both databases) are pinned to SQLite, so the module stays at a few minutes on 2 cores.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.e2e import upgrade_helpers as uh
from rq.job import Job

from ccp.api.upgrades import upgrade_json
from ccp.extensions import get_queue, get_redis
from ccp.models import AuditEvent, Instance, Upgrade
from ccp.services import upgrades

REPO = Path(__file__).resolve().parents[2]
RELEASE_STEPS = ["render", "check_plan", "pre_upgrade", "backup", "write", "env_patch", "pull", "up", "verify",
                 "post_upgrade"]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _reload(db, upgrade: Upgrade) -> Upgrade:
    db.session.expire_all()
    return db.session.get(Upgrade, upgrade.id)


def _steps(upgrade: Upgrade) -> dict[str, str]:
    return {s.name: s.status for s in upgrade.steps}


def _why(upgrade: Upgrade) -> str:
    return f"{upgrade.status}: {upgrade.error}\n" + "\n".join(
        f"  {s.name}: {s.status} {s.duration_s}s {(s.output_tail or '')[-300:]!r}" for s in upgrade.steps)


# ------------------------------------------------------------------------------------------------ success paths


def test_provisioned_tenant_previews_and_applies_v2(app, db, real_tenant, run_worker):
    # Installed from an older set version that had no config/motd.txt: the release creates it.
    t, inst = real_tenant(skip_files=("config/motd.txt",))
    v1_container = t.container()

    preview = upgrades.preview_release(inst, "v2")
    status = {f.path: f.status for f in preview.files}
    assert status == {".env": "modified", "config/app.conf": "modified", "config/motd.txt": "created",
                      "docker-compose.yml": "unchanged"}
    assert preview.summary == {"unchanged": 1, "modified": 2, "created": 1}
    assert preview.from_tag == "v1" and preview.tag == "v2" and not preview.registered
    assert (preview.set_name, preview.set_version) == ("e2e-web", "1.0.0")
    assert len(preview.plan_hash) == 64 and int(preview.plan_hash, 16) >= 0
    assert preview.env_patch == {} and preview.coverage["missing"] == []
    env_diff = next(f.diff for f in preview.files if f.path == ".env")
    assert "-IMAGE_TAG=v1" in env_diff.replace("'", "") or "IMAGE_TAG" in env_diff
    assert t.secret not in repr(preview), "a CCP-held secret leaked into the preview"
    assert upgrades.preview_release(inst, "v2").plan_hash == preview.plan_hash, "plan hash not stable"
    assert t.tree().keys() >= {".env", "config/app.conf", "docker-compose.yml"}
    assert "config/motd.txt" not in t.tree(), "preview wrote a file"

    upgrade = upgrades.start_release(inst, "v2", plan=preview.plan_hash, actor="user:e2e")
    assert upgrade.status == "queued" and upgrade.job_id
    run_worker()
    upgrade = _reload(db, upgrade)
    assert upgrade.status == "succeeded", _why(upgrade)

    # the tenant really runs v2: page, container image, instance row
    assert uh.page_version(t.url) == "v2"
    assert t.image() == "127.0.0.1:5055/ccp-test/web:v2"
    assert t.container() != v1_container, "web was not recreated"
    assert t.image("sidecar") == "127.0.0.1:5055/ccp-test/web:v1", "the pinned sidecar must stay on v1"
    assert db.session.get(Instance, inst.id).image_tag == "v2"
    assert upgrade.plan_hash == preview.plan_hash

    # every step recorded with timings; files on disk are exactly the v2 render
    assert [s.name for s in upgrade.steps] == RELEASE_STEPS
    d = upgrade_json(upgrades.upgrade_status(upgrade))  # what the API answers
    for step in d["steps"]:
        if step["name"] == "env_patch":
            assert step["status"] == "skipped" and "provisioned" in step["output_tail"]
            continue
        if step["name"] in ("pre_upgrade", "backup", "post_upgrade"):  # e2e-web declares no hooks, no backup
            assert step["status"] == "skipped" and "declares no" in step["output_tail"]
            continue
        assert step["status"] == "succeeded", _why(upgrade)
        assert step["started_at"] and step["finished_at"] and step["duration_s"] is not None and step["duration_s"] >= 0
    by_name = {s["name"]: s for s in d["steps"]}
    assert "health URLs ok" in by_name["verify"]["output_tail"] and "web healthy" in by_name["verify"]["output_tail"]
    assert d["duration_s"] >= float(uh.MONITOR_WINDOW_S)
    assert all(t.secret not in (s["output_tail"] or "") for s in d["steps"])
    rendered = uh.render_files(t.slug, t.project, "v2", t.vars, secrets={"APP_SECRET": t.secret})
    assert t.tree() == {k: v.encode() for k, v in rendered.items()}

    # an up-to-date tenant previews as all unchanged
    again = upgrades.preview_release(db.session.get(Instance, inst.id), "v2")
    assert again.summary == {"unchanged": 4, "modified": 0, "created": 0}


def test_registered_tenant_env_untouched_except_image_tag(app, db, real_tenant, run_worker):
    t, inst = real_tenant(registered=True)
    env_before = (t.install_dir / ".env").read_bytes()
    assert _container_env(t)["APP_SECRET"] == t.secret  # compose reads the hand-written .env as written

    preview = upgrades.preview_release(inst, "v2")
    assert ".env" not in {f.path for f in preview.files}
    assert preview.env_patch == {"IMAGE_TAG": "v2"} and preview.registered
    assert preview.coverage["missing"] == []
    assert t.secret not in repr(preview)

    upgrade = upgrades.start_release(inst, "v2", plan=preview.plan_hash, actor="user:e2e")
    run_worker()
    upgrade = _reload(db, upgrade)
    assert upgrade.status == "succeeded", _why(upgrade)
    assert _steps(upgrade)["env_patch"] == "succeeded"

    env_after = (t.install_dir / ".env").read_bytes()
    assert env_after == env_before.replace(b"\nIMAGE_TAG=v1\n", b"\nIMAGE_TAG=v2\n"), env_after.decode()
    assert env_after != env_before
    # compose now reads the new tag from .env: the running container is v2, with the tenant's own secret intact
    assert t.image() == "127.0.0.1:5055/ccp-test/web:v2"
    assert _container_env(t)["APP_SECRET"] == t.secret
    assert _container_env(t)["APP_NAME"] == "acme # not a comment"
    assert uh.page_version(t.url) == "v2"
    assert db.session.get(Instance, inst.id).image_tag == "v2"
    assert all(t.secret not in (s.output_tail or "") for s in upgrade.steps)


def _container_env(t: uh.RealTenant) -> dict[str, str]:
    env = (uh.inspect(t.container()).get("Config") or {}).get("Env") or []
    return dict(item.split("=", 1) for item in env)


# -------------------------------------------------------------------------------------------------- rollbacks


@SQLITE_ONLY
@pytest.mark.parametrize("bad_tag, cause", [("broken", "web"), ("unhealthy", "web")])
def test_bad_tag_rolls_back_to_v1(app, db, real_tenant, run_worker, bad_tag, cause):
    t, inst = real_tenant()
    tree_before = t.tree()
    started = time.monotonic()
    upgrade = upgrades.start_release(inst, bad_tag, actor="user:e2e")
    run_worker()
    took = time.monotonic() - started
    upgrade = _reload(db, upgrade)
    assert upgrade.status == "rolled_back", _why(upgrade)
    assert cause in upgrade.error and "rolled back" in upgrade.error
    steps = _steps(upgrade)
    assert steps["write"] == "succeeded" and steps["up"] == "succeeded" and steps["verify"] == "failed"
    assert [s.name for s in upgrade.steps][-3:] == ["restore", "rollback_up", "rollback_verify"]
    assert all(steps[n] == "succeeded" for n in ("restore", "rollback_up", "rollback_verify")), _why(upgrade)

    # files and .env byte-identical, the running image and the page are v1 again, the instance still says v1
    assert t.tree() == tree_before
    assert t.image() == "127.0.0.1:5055/ccp-test/web:v1"
    assert uh.page_version(t.url) == "v1"
    inst = db.session.get(Instance, inst.id)
    assert inst.image_tag == "v1" and not inst.attention
    # a crash-looping container must be recognised quickly, not only at the 60 s step deadline
    assert took < float(uh.STEP_DEADLINE_S), f"rollback took {took:.1f}s: {_why(upgrade)}"


# ------------------------------------------------------------------------------------------------ refusals


@SQLITE_ONLY
def test_tenant_changed_after_preview_fails_before_writing(app, db, real_tenant, run_worker):
    t, inst = real_tenant()
    preview = upgrades.preview_release(inst, "v2")
    conf = t.install_dir / "config" / "app.conf"
    conf.write_text(conf.read_text() + "# tuned by hand on the host after the preview\n")
    # Already stale when the apply is asked for: refused at once, nothing queued.
    with pytest.raises(upgrades.PlanStale):
        upgrades.start_release(inst, "v2", plan=preview.plan_hash, actor="user:e2e")
    # Current when asked for, changed on the host before the job runs: the job refuses before writing.
    conf.write_text(conf.read_text().replace("# tuned by hand on the host after the preview\n", ""))
    upgrade = upgrades.start_release(inst, "v2", plan=preview.plan_hash, actor="user:e2e")
    conf.write_text(conf.read_text() + "# tuned by hand on the host after the preview\n")
    tree_before, container_before = t.tree(), t.container()
    run_worker()
    upgrade = _reload(db, upgrade)
    assert upgrade.status == "failed", _why(upgrade)
    assert "changed since preview" in upgrade.error
    steps = _steps(upgrade)
    assert steps["render"] == "succeeded" and steps["check_plan"] == "failed"
    assert all(steps[n] == "skipped" for n in ("write", "env_patch", "pull", "up", "verify")), steps
    assert t.tree() == tree_before, "something was written"
    assert t.container() == container_before and t.image() == "127.0.0.1:5055/ccp-test/web:v1"
    assert uh.page_version(t.url) == "v1"
    assert db.session.get(Instance, inst.id).image_tag == "v1"


def test_two_applies_at_once_only_one_runs(app, app_env, db, real_tenant):
    t, inst = real_tenant()
    first = upgrades.start_release(inst, "v2", actor="user:a")
    with pytest.raises(upgrades.UpgradeConflict) as refused:
        upgrades.start_release(inst, "v2", actor="user:b")
    assert refused.value.status == 409 and str(first.id) in refused.value.message
    assert Upgrade.query.count() == 1 and get_queue().job_ids == [first.job_id]

    # The same upgrade's job delivered twice (a retry, a duplicated enqueue), two workers racing for it.
    dup = get_queue().enqueue("ccp.jobs.run_upgrade", first.id, job_timeout=600)
    env = {**os.environ, **app_env, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ccp.cli", "worker", "--burst", "--name"]
    workers = [subprocess.Popen([*cmd, f"e2e-w{i}-{first.id}-{os.getpid()}"], env=env, cwd=str(REPO),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in (1, 2)]
    try:
        # While it runs, a third start is refused as well (the job takes > 3 s: health wait + 2 s monitor window).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _reload(db, first).status == "queued":
            time.sleep(0.05)
        assert _reload(db, first).status == "running", _why(_reload(db, first))
        with pytest.raises(upgrades.UpgradeConflict):
            upgrades.start_release(db.session.get(Instance, inst.id), "v2", actor="user:c")
        outputs = [w.communicate(timeout=180)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(10)
    assert [w.returncode for w in workers] == [0, 0], outputs

    upgrade = _reload(db, first)
    assert upgrade.status == "succeeded", _why(upgrade)
    assert [s.name for s in upgrade.steps] == RELEASE_STEPS, "steps ran twice or were recorded twice"
    # Exactly one run: one finished event, steps recorded once. The other job found the row already claimed and
    # returned its status without touching the tenant ("running" when it raced the winner, as it does here).
    finished = AuditEvent.query.filter_by(action="upgrade.finish.release").all()
    assert [(e.result, e.detail.get("upgrade_id")) for e in finished] == [("succeeded", first.id)]
    results = sorted(str(Job.fetch(jid, connection=get_redis()).return_value()) for jid in (first.job_id, dup.id))
    assert results in (["running", "succeeded"], ["succeeded", "succeeded"]), (results, outputs)
    assert Upgrade.query.count() == 1
    assert t.image() == "127.0.0.1:5055/ccp-test/web:v2" and uh.page_version(t.url) == "v2"


@SQLITE_ONLY
def test_agent_down_preview_names_agent_and_apply_writes_nothing(app, db, real_tenant, run_worker):
    t, inst = real_tenant()
    tree_before, container_before = t.tree(), t.container()
    t.agent.stop()

    started = time.monotonic()
    with pytest.raises(upgrades.AgentUnavailable) as err:
        upgrades.preview_release(inst, "v2")
    assert err.value.status == 502 and err.value.code == "agent_unavailable"
    assert "unreachable" in err.value.message
    assert err.value.message.count(t.agent.url) == 1, err.value.message  # named once, not "agent at X: agent at X"
    assert time.monotonic() - started < 15, "preview against a dead agent must fail fast"

    upgrade = upgrades.start_release(inst, "v2", actor="user:e2e")
    run_worker()
    upgrade = _reload(db, upgrade)
    assert upgrade.status == "failed", _why(upgrade)
    assert t.agent.url in upgrade.error and "unreachable" in upgrade.error
    steps = _steps(upgrade)
    assert not any(v == "succeeded" for v in steps.values()), steps
    assert t.tree() == tree_before
    assert t.container() == container_before and uh.page_version(t.url) == "v1"
    assert db.session.get(Instance, inst.id).image_tag == "v1"


@SQLITE_ONLY
def test_agent_down_failure_is_recorded_on_the_first_step(app, db, real_tenant, run_worker):
    """Operators see which step failed: an unreachable agent must show on `render` (the first agent step), not as
    seven 'skipped' steps with the cause only in upgrade.error. Fails until runner.run_upgrade records the
    check_agent failure on the first step (see the e2e report)."""
    t, inst = real_tenant(start=False)
    t.agent.stop()
    upgrade = upgrades.start_release(inst, "v2", actor="user:e2e")
    run_worker()
    upgrade = _reload(db, upgrade)
    assert upgrade.status == "failed"
    steps = _steps(upgrade)
    assert steps["render"] == "failed", _why(upgrade)
    assert t.agent.url in (upgrade.steps[0].output_tail or "") and upgrade.steps[0].finished_at, _why(upgrade)
    assert all(v == "skipped" for k, v in steps.items() if k != "render"), steps
