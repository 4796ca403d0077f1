"""Scans fanned out per instance: drift found after a hand edit, unreachable agents, the update check against a
registry on 127.0.0.1, the agent inventory; the run ends (summary) when its last instance job ends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ccp.models import AuditEvent, Instance, InstanceScan, Receiver, ScanRun, Upgrade, as_utc
from ccp.services.scan_runs import ScanInvalid, start_scan
from tests.factories import make_instance


def _row(db, instance) -> InstanceScan:
    db.session.expire_all()
    return db.session.get(InstanceScan, instance.id)


def test_hand_edit_is_found_by_the_next_drift_scan(app, db, run_worker, tenant_factory):
    inst = tenant_factory(driver="remote")
    other = tenant_factory(driver="local")
    run = start_scan(["drift"], actor="test")
    assert run.total == 2 and run.done == 0
    run_worker()
    assert _row(db, inst).sync_state == "in_sync" and _row(db, other).sync_state == "in_sync"
    compose = Path(inst.install_dir) / "docker-compose.yml"
    compose.write_text(compose.read_text() + "# edited by hand on the host\n")
    run = start_scan(["drift"], actor="test")
    run_worker()
    row = _row(db, inst)
    assert row.sync_state == "drifted" and row.drifted_files == ["docker-compose.yml"]
    assert _row(db, other).sync_state == "in_sync"
    run = db.session.get(ScanRun, run.id)
    assert run.done == run.total == 2 and run.finished_at is not None
    assert run.summary["drifted"] == 1 and run.summary["drifted_list"] == [
        {"slug": inst.slug, "files": ["docker-compose.yml"]}]
    # the inventory came along: the agent's version, protocol and capabilities
    facts = row.agent_facts
    assert facts["reachable"] and facts["protocol"] == 1 and "files.diff" in facts["capabilities"]
    assert "docker" in facts and facts["disk_free_bytes"] > 0 and abs(facts["clock_skew_s"]) < 5
    assert facts["running_digests"] == {}  # the dry-run runtime pulls no image
    actions = [a for (a,) in db.session.execute(select(AuditEvent.action)).all()]
    assert actions.count("scan.start") == 2 and actions.count("scan.finish") == 2


def test_unreachable_agent_is_recorded_with_since_and_kept(app, db, run_worker):
    inst = make_instance()  # agent_url 127.0.0.1:9: nothing listens
    start_scan(["drift", "agents"], actor="test")
    run_worker()
    row = _row(db, inst)
    assert row.sync_state == "unreachable" and row.agent_facts["reachable"] is False
    first = row.unreachable_since
    assert first is not None and "unreachable" in row.sync_detail
    start_scan(["agents"], actor="test")
    run_worker()
    assert _row(db, inst).unreachable_since == first  # since when, not since the last scan


def test_bad_kinds_are_refused_and_nothing_is_queued(app, db):
    make_instance()
    for kinds in ([], ["drift", "bogus"]):
        try:
            start_scan(kinds, actor="test")
        except ScanInvalid as exc:
            assert exc.status == 422
        else:
            raise AssertionError("accepted")
    assert db.session.execute(select(ScanRun)).first() is None


def test_empty_fleet_run_ends_at_once(app, db):
    run = start_scan(["agents"], actor="test")
    assert run.finished_at is not None and run.summary["scanned"] == 0


def _receiver(db, registry, **policy) -> Receiver:
    rec = Receiver(name="app", kind="distribution", repository="acme/app", image=f"{registry.host}/acme/app",
                   instances=[], canary=1, wave_size=5, **policy)
    db.session.add(rec)
    db.session.commit()
    return rec


def test_update_check_new_image_under_same_tag_and_behind_by(app, db, run_worker, tenant_factory, registry):
    inst = tenant_factory(driver="local", tag="v1.0.0")
    start_scan(["updates"], actor="test")
    run_worker()
    row = _row(db, inst)
    assert row.update_state == "unknown" and "no receiver" in row.update_detail
    registry.digests = {"v1.0.0": "sha256:" + "a" * 64, "v1.1.0": "sha256:" + "b" * 64,
                        "v2.0.0": "sha256:" + "c" * 64, "v2.1.0-rc.1": "sha256:" + "d" * 64}
    _receiver(db, registry, semver_range="^1 || ^2")
    start_scan(["updates"], actor="test")
    run_worker()
    row = _row(db, inst)
    assert row.update_state == "current"  # first sight: the registry's digest becomes the baseline
    assert row.behind_by == 2 and row.newest_tag == "v2.0.0"  # v1.1.0 and v2.0.0; the rc is outside the range
    assert "behind by 2 releases" in row.update_detail
    registry.digests["v1.0.0"] = "sha256:" + "e" * 64  # a new image pushed under the same tag
    run = start_scan(["updates"], actor="test")
    run_worker()
    row = _row(db, inst)
    assert row.update_state == "update_available" and "points to a new image" in row.update_detail
    summary = db.session.get(ScanRun, run.id).summary
    assert [u["slug"] for u in summary["updates_list"]] == [inst.slug]
    assert summary["new_updates_list"] == [{"slug": inst.slug, "state": "update_available", "behind_by": 2,
                                            "newest": "v2.0.0"}]  # behind before, a new image now: news
    # an upgrade that pulled the tag again (quick) resets the baseline: current once more
    db.session.add(Upgrade(instance_id=inst.id, kind="quick", status="succeeded", to_tag="v1.0.0", actor="x",
                           finished_at=__import__("ccp.models", fromlist=["utcnow"]).utcnow()))
    db.session.commit()
    start_scan(["updates"], actor="test")
    run_worker()
    assert _row(db, inst).update_state == "current"


def test_update_check_prefers_the_digest_the_upgrade_resolved(app, db, run_worker, tenant_factory, registry):
    inst = tenant_factory(driver="local", tag="v3")
    registry.digests = {"v3": "sha256:" + "1" * 64}
    _receiver(db, registry)
    db.session.add(Upgrade(instance_id=inst.id, kind="release", status="succeeded", to_tag="v3", actor="x",
                           image_digest="sha256:" + "0" * 64))
    db.session.commit()
    start_scan(["updates"], actor="test")
    run_worker()
    row = _row(db, inst)
    assert row.update_state == "update_available" and row.image_digests[receiver_image(registry)]["source"] == "upgrade"
    assert row.behind_by is None  # no tag policy: cannot say how far behind
    assert sum(1 for c in registry.calls if c.startswith("GET")) == 0  # no policy: the tag list is not fetched


def receiver_image(registry) -> str:
    return f"{registry.host}/acme/app"


def test_registry_lookups_are_shared_by_a_run(app, db, run_worker, tenant_factory, registry):
    registry.digests = {"v1": "sha256:" + "a" * 64, "v2": "sha256:" + "b" * 64}
    _receiver(db, registry, semver_range=">=1")
    for _ in range(3):
        tenant_factory(driver="local", tag="v1")
    start_scan(["updates"], actor="test")
    run_worker()
    assert registry.calls.count("HEAD /v2/acme/app/manifests/v1") == 1
    rows = db.session.execute(select(InstanceScan)).scalars().all()
    assert [r.behind_by for r in rows] == [1, 1, 1]


def test_a_run_left_open_by_a_killed_job_is_ended_by_housekeeping(app, db):
    from datetime import timedelta

    from ccp.models import utcnow
    from ccp.services.scan_runs import end_stale_runs

    make_instance(), make_instance()
    run = start_scan(["agents"], actor="test")  # its jobs are never run: as if the worker died
    assert end_stale_runs() == []  # young: its jobs may still be running
    run.created_at = utcnow() - timedelta(hours=1)
    inst_id = db.session.execute(select(Instance.id)).scalars().first()
    db.session.add(InstanceScan(instance_id=inst_id, scan_run_id=run.id, agent_at=utcnow(), drifted_files=[],
                                agent_facts={}, image_digests={}))
    db.session.commit()
    assert end_stale_runs() == []  # started long ago, but an instance was scanned a moment ago: still going
    db.session.get(InstanceScan, inst_id).agent_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert end_stale_runs() == [run.id] and end_stale_runs() == []
    db.session.expire_all()
    run = db.session.get(ScanRun, run.id)
    assert run.finished_at is not None and run.summary["not_scanned"] == 2 and run.summary["scanned"] == 1


def test_a_scan_queued_first_does_not_delay_an_upgrade_queued_after_it(app, db, run_worker, tenant_factory):
    """Scans go to the background queue, which workers take only when the main one is empty: an upgrade (or the
    next wave of a rollout) queued behind a whole-fleet scan still runs first."""
    from ccp.extensions import get_background_queue, get_queue
    from ccp.services import upgrades as upgrade_svc

    tenants = [tenant_factory(driver="local") for _ in range(3)]
    run = start_scan(["drift"], actor="test")
    upgrade = upgrade_svc.start_release(tenants[0], "v2", actor="test")
    assert (len(get_background_queue()), len(get_queue())) == (3, 1)
    run_worker()
    db.session.expire_all()
    upgrade = db.session.get(Upgrade, upgrade.id)
    assert upgrade.status == "succeeded", upgrade.error
    scanned = [_row(db, t).drift_at for t in tenants]
    assert db.session.get(ScanRun, run.id).done == 3 and all(scanned)
    assert all(as_utc(upgrade.finished_at) <= as_utc(at) for at in scanned), "a scan ran before the upgrade"
