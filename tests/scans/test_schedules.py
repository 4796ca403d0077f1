"""Schedules: seeded by the migration, validated when edited, claimed once when due (several workers), audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ccp.models import AuditEvent, ScanRun, ScanSchedule, as_utc, utcnow
from ccp.services.schedules import ScheduleInvalid, ScheduleNotFound, list_schedules, run_due, update_schedule
from tests.factories import make_instance


def test_migration_seeds_one_enabled_schedule_per_kind(app):
    views = list_schedules()
    assert [(v.kind, v.cron, v.enabled) for v in views] == [
        ("drift", "0 * * * *", True), ("updates", "30 */6 * * *", True), ("agents", "*/15 * * * *", True)]


@pytest.mark.parametrize("cron", ["", "* * *", "61 * * * *", "x y z w v", "* * * * * *", "a" * 200, None])
def test_bad_cron_is_refused_and_changes_nothing(app, db, cron):
    with pytest.raises(ScheduleInvalid) as caught:
        update_schedule("drift", cron=cron if cron is not None else 5, actor="test")
    assert caught.value.status == 422 and "cron" in caught.value.details
    db.session.expire_all()
    assert db.session.execute(select(ScanSchedule.cron).filter_by(kind="drift")).scalar() == "0 * * * *"
    assert db.session.execute(select(AuditEvent)).first() is None


def test_unknown_kind_is_not_found(app):
    with pytest.raises(ScheduleNotFound) as caught:
        update_schedule("backups", cron="0 * * * *", actor="test")
    assert caught.value.status == 404


def test_edit_recomputes_next_run_and_is_audited(app, db):
    before = utcnow()
    schedule = update_schedule("drift", cron="*/5 * * * *", actor="user:admin")
    nxt = as_utc(schedule.next_run_at)
    assert before < nxt <= before + timedelta(minutes=5) and nxt.minute % 5 == 0
    off = update_schedule("drift", enabled=False, actor="user:admin")
    assert off.next_run_at is None
    event = db.session.execute(select(AuditEvent).filter_by(action="schedule.update")).scalars().all()[-1]
    assert event.detail["after"] == {"cron": "*/5 * * * *", "enabled": False}


def test_due_schedule_starts_one_run_however_many_workers_ask(app, db):
    make_instance()
    assert run_due() == []  # first sight: each schedule gets its next time and waits for it
    for s in db.session.execute(select(ScanSchedule)).scalars():
        assert s.next_run_at is not None
    drift = db.session.execute(select(ScanSchedule).filter_by(kind="drift")).scalar_one()
    drift.next_run_at = utcnow() - timedelta(hours=3)  # three slots missed while no worker ran
    db.session.commit()
    started = run_due()
    assert len(started) == 1 and run_due() == []  # once, not once per missed slot, not once per worker
    run = db.session.get(ScanRun, started[0])
    assert run.kinds == ["drift"] and run.source == "schedule" and run.total == 1
    db.session.expire_all()
    drift = db.session.execute(select(ScanSchedule).filter_by(kind="drift")).scalar_one()
    assert drift.last_run_id == run.id and as_utc(drift.next_run_at) > utcnow()
    view = next(v for v in list_schedules() if v.kind == "drift")
    assert view.last_run_at is not None and view.last_run_finished is False


def test_two_workers_at_the_same_moment_start_one_run(app, db):
    import threading

    drift = db.session.execute(select(ScanSchedule).filter_by(kind="drift")).scalar_one()
    drift.next_run_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    now, results, barrier = utcnow(), [], threading.Barrier(2)

    def worker():
        with app.app_context():
            barrier.wait()
            results.append(run_due(now))
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(db.session.execute(select(ScanRun)).all()) == 1
