"""Upgrade to Release end to end through the service layer, the RQ worker and a real install dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccp.envfile.dotenv import parse_env
from ccp.models import Upgrade
from ccp.services import upgrades
from tests.tenants import CANARY


def _dir(inst) -> Path:
    return Path(inst.install_dir)


def test_up_to_date_tenant_previews_all_unchanged(app, tenant):
    preview = upgrades.preview_release(tenant, "v1")
    assert preview.summary["modified"] == 0 and preview.summary["created"] == 0
    assert preview.summary["unchanged"] == len(preview.files) >= 10
    assert preview.coverage["missing"] == []
    assert (preview.instance, preview.from_tag, preview.tag) == (tenant.slug, "v1", "v1")


def test_preview_v2_shows_changes_and_masks_env(app, tenant):
    (_dir(tenant) / "nginx" / "conf.d" / "default.conf").unlink()
    preview = upgrades.preview_release(tenant, "v2")
    status = {f.path: f.status for f in preview.files}
    assert status[".env"] == "modified" and status["nginx/conf.d/default.conf"] == "created"
    assert status["docker-compose.yml"] == "unchanged"
    assert [f.path for f in preview.files] == sorted(status)
    env_diff = next(f.diff for f in preview.files if f.path == ".env")
    assert "IMAGE_TAG" in env_diff and CANARY not in str(preview)
    assert len(preview.plan_hash) == 64
    assert upgrades.preview_release(tenant, "v2").plan_hash == preview.plan_hash
    assert upgrades.plan_release(tenant, "v2").plan_hash == preview.plan_hash


def test_apply_release_succeeds_and_records_steps(app, tenant, run_worker, db):
    plan = upgrades.preview_release(tenant, "v2").plan_hash
    upgrade = upgrades.start_release(tenant, "v2", plan=plan, actor="user:test")
    assert upgrade.status == "queued" and upgrade.job_id
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", (upgrade.error, [(s.name, s.status, s.output_tail) for s in upgrade.steps])
    assert tenant.image_tag == "v2"
    assert parse_env((_dir(tenant) / ".env").read_text())["IMAGE_TAG"] == "v2"
    steps = {s.name: s for s in upgrade.steps}
    assert [s.name for s in upgrade.steps] == ["render", "check_plan", "pre_upgrade", "backup", "write", "env_patch",
                                              "pull", "up", "verify", "post_upgrade"]
    assert steps["env_patch"].status == "skipped"
    for name in ("pre_upgrade", "backup", "post_upgrade"):  # the set declares no hooks and no backup
        assert steps[name].status == "skipped" and "declares no" in steps[name].output_tail
    for name in ("render", "check_plan", "write", "pull", "up", "verify"):
        assert steps[name].status == "succeeded" and steps[name].duration_s is not None
    assert all(CANARY not in (s.output_tail or "") for s in upgrade.steps)


def test_registered_tenant_env_patched_in_place(app, tenant_factory, run_worker, db):
    inst = tenant_factory(registered=True)
    before = (_dir(inst) / ".env").read_text()
    preview = upgrades.preview_release(inst, "v2")
    assert ".env" not in {f.path for f in preview.files}
    assert preview.env_patch == {"IMAGE_TAG": "v2"} and preview.registered
    upgrade = upgrades.start_release(inst, "v2", plan=preview.plan_hash, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error
    after = (_dir(inst) / ".env").read_text()
    assert after == before.replace("IMAGE_TAG=v1", "IMAGE_TAG=v2")


def test_broken_tag_rolls_back_files_and_env(app, tenant, run_worker, db):
    before = {p: p.read_bytes() for p in _dir(tenant).rglob("*") if p.is_file() and ".ccp" not in p.parts
              and p.name != ".dry-run-runtime.json"}
    upgrade = upgrades.start_release(tenant, "broken", actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "rolled_back", upgrade.error
    assert "exited" in upgrade.error
    after = {p: p.read_bytes() for p in before}
    assert after == before
    assert tenant.image_tag == "v1"
    names = [s.name for s in upgrade.steps if s.status == "succeeded"]
    assert names[-3:] == ["restore", "rollback_up", "rollback_verify"]


def test_plan_stale_at_request_time_is_refused_without_enqueueing(app, tenant, db):
    from ccp.extensions import get_queue
    from ccp.models import AuditEvent

    plan = upgrades.preview_release(tenant, "v2").plan_hash
    target = _dir(tenant) / "nginx" / "nginx.conf"
    target.write_text(target.read_text() + "# edited by hand\n")
    with pytest.raises(upgrades.PlanStale) as err:
        upgrades.start_release(tenant, "v2", plan=plan, actor="t")
    assert err.value.status == 409 and err.value.details["plan"] != plan
    assert Upgrade.query.count() == 0 and get_queue().count == 0
    refused = AuditEvent.query.filter_by(result="refused:plan_stale").one()
    assert refused.action == "upgrade.start.release" and refused.plan_hash == plan


def test_plan_changed_after_the_request_fails_the_job_before_writing(app, tenant, run_worker, db):
    plan = upgrades.preview_release(tenant, "v2").plan_hash
    upgrade = upgrades.start_release(tenant, "v2", plan=plan, actor="t")  # still current: accepted
    target = _dir(tenant) / "nginx" / "nginx.conf"
    target.write_text(target.read_text() + "# edited by hand\n")  # ... and changed before the job runs
    env_before = (_dir(tenant) / ".env").read_bytes()
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "failed" and "changed since preview" in upgrade.error
    assert (_dir(tenant) / ".env").read_bytes() == env_before
    assert target.read_text().endswith("# edited by hand\n")


def test_second_start_conflicts_and_bad_tag_enqueues_nothing(app, tenant, db):
    first = upgrades.start_release(tenant, "v2", actor="t")
    with pytest.raises(upgrades.UpgradeConflict):
        upgrades.start_release(tenant, "v3", actor="t")
    with pytest.raises(upgrades.TagInvalid):
        upgrades.start_release(tenant, "../etc", actor="t")
    assert Upgrade.query.count() == 1
    from ccp.extensions import get_queue

    assert get_queue().job_ids == [first.job_id]


def test_cancel_queued_upgrade(app, tenant, run_worker, db):
    upgrade = upgrades.start_release(tenant, "v2", actor="t")
    upgrades.cancel_upgrade(upgrade, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "cancelled"
    assert parse_env((_dir(tenant) / ".env").read_text())["IMAGE_TAG"] == "v1"
    with pytest.raises(upgrades.NotCancellable):
        upgrades.cancel_upgrade(upgrade, actor="t")


@pytest.mark.parametrize("driver", ["local", "remote"])
def test_preview_env_table_shows_the_tag_and_warns_of_secret_changes(app, tenant_factory, db, driver):
    inst = tenant_factory(driver=driver)
    preview = upgrades.preview_release(inst, "v2")
    rows = {c.key: c for c in preview.env_changes}
    assert (rows["IMAGE_TAG"].old, rows["IMAGE_TAG"].new, rows["IMAGE_TAG"].change) == ("v1", "v2", "changed")
    assert rows["POSTGRES_PASSWORD"].secret and rows["POSTGRES_PASSWORD"].change == "unchanged"
    assert preview.secrets_changed == () and [c.key for c in preview.env_changed] == ["IMAGE_TAG"]
    secrets = inst.decrypted_secrets()
    inst.set_secrets({**secrets, "POSTGRES_PASSWORD": f"{CANARY}-rotated"})
    db.session.commit()
    preview = upgrades.preview_release(inst, "v2")
    assert preview.secrets_changed == ("POSTGRES_PASSWORD",)
    assert CANARY not in repr(preview)


@pytest.mark.parametrize("driver", ["local", "remote"])
def test_registered_preview_shows_managed_values_and_key_names_only(app, tenant_factory, db, driver):
    inst = tenant_factory(registered=True, driver=driver)
    preview = upgrades.preview_release(inst, "v2")
    assert [(c.key, c.change, c.old, c.new) for c in preview.env_changes] == [("IMAGE_TAG", "changed", "v1", "v2")]
    assert "POSTGRES_PASSWORD" in preview.env_other_keys and "IMAGE_TAG" not in preview.env_other_keys
    assert preview.secrets_changed == () and CANARY not in repr(preview)


@pytest.mark.parametrize("registered", [False, True], ids=["provisioned", "registered"])
def test_release_through_a_real_agent(app, tenant_factory, run_worker, db, registered):
    inst = tenant_factory(registered=registered, driver="remote")
    preview = upgrades.preview_release(inst, "v2")
    assert inst.agent_version and "files.diff" in inst.agent_capabilities
    upgrade = upgrades.start_release(inst, "v2", plan=preview.plan_hash, actor="t")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", upgrade.error
    assert parse_env((_dir(inst) / ".env").read_text())["IMAGE_TAG"] == "v2"


def test_agent_too_old_is_a_clear_error(app, tenant_factory, monkeypatch):
    import ccp.protocol as protocol

    inst = tenant_factory(driver="remote")
    monkeypatch.setattr(protocol, "CAPABILITIES", ("files.write",))  # an agent from before files.diff existed
    with pytest.raises(upgrades.AgentTooOld) as err:
        upgrades.preview_release(inst, "v2")
    assert "files.diff" in err.value.message


def test_cancel_running_upgrade_rolls_back_at_next_step(app, tenant, db, monkeypatch):
    import threading
    import time

    from ccp.services.runner import run_upgrade

    def work(upgrade_id: int) -> None:  # the job body, in a thread (RQ workers need the main thread)
        with app.app_context():
            run_upgrade(upgrade_id)

    monkeypatch.setenv("DRY_RUN_COMPOSE_SLEEP", "2")
    upgrade = upgrades.start_release(tenant, "v2", actor="t")
    worker = threading.Thread(target=work, args=(upgrade.id,))
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        db.session.expire_all()
        if {s.name: s.status for s in db.session.get(Upgrade, upgrade.id).steps}["pull"] == "running":
            break
        time.sleep(0.1)
    upgrades.cancel_upgrade(db.session.get(Upgrade, upgrade.id), actor="user:op")
    worker.join(60)
    db.session.expire_all()
    upgrade = db.session.get(Upgrade, upgrade.id)
    assert upgrade.status == "cancelled" and "cancelled" in upgrade.error, upgrade.error
    steps = {s.name: s.status for s in upgrade.steps}
    assert steps["pull"] == "succeeded" and steps["up"] == "skipped" and steps["restore"] == "succeeded"
    assert parse_env((_dir(tenant) / ".env").read_text())["IMAGE_TAG"] == "v1"


def test_upgrade_timestamps_carry_utc_offset(app, tenant, run_worker, db):
    upgrade = upgrades.start_release(tenant, "v2", actor="t")
    run_worker()
    db.session.refresh(upgrade)
    from ccp.api.upgrades import upgrade_json

    status = upgrades.upgrade_status(upgrade)
    assert status.final and status.duration_s is not None and status.instance_id == upgrade.instance_id
    assert [s.name for s in status.steps] == [s.name for s in upgrade.steps]
    data = upgrade_json(status)
    for key in ("created_at", "started_at", "finished_at"):
        assert data[key].endswith("+00:00"), (key, data[key])


def test_a_start_with_redis_down_is_refused_and_leaves_no_active_upgrade(app, tenant, db):
    """The upgrade, its steps and its audit event are written in one commit, then the job is queued: with Redis
    unreachable the upgrade ends failed at once (no lock left behind), the audit event says the enqueue failed, and a
    start once Redis is back works."""
    import redis
    from sqlalchemy import select

    from ccp.models import ACTIVE_STATUSES, AuditEvent

    plan = upgrades.plan_release(tenant, "v2").plan_hash
    working = app.extensions["ccp_redis"]
    app.extensions["ccp_redis"] = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        with pytest.raises(upgrades.UpgradeError, match="Redis is unavailable"):
            upgrades.start_release(tenant, "v2", plan=plan, actor="user:ann")
    finally:
        app.extensions["ccp_redis"] = working
    db.session.expire_all()
    failed = db.session.execute(select(Upgrade).filter_by(instance_id=tenant.id)).scalar_one()
    assert (failed.status, failed.error) == ("failed", "could not enqueue: Redis unavailable")
    assert failed.finished_at and failed.job_id and [s.status for s in failed.steps] == ["pending"] * len(failed.steps)
    event = db.session.execute(select(AuditEvent).filter_by(action="upgrade.start.release")).scalar_one()
    assert (event.result, event.detail["upgrade_id"], event.target) == ("failed:redis_unavailable", failed.id,
                                                                        tenant.slug)
    again = upgrades.start_release(tenant, "v2", plan=plan, actor="user:ann")
    assert again.status in ACTIVE_STATUSES and again.job_id != failed.job_id
    assert app.extensions["ccp_redis"].exists(f"rq:job:{again.job_id}")
