"""Maintenance windows and holds (ccp.services.windows) and how rollouts, manual starts and the fleet page respect
them, with a clock set by time-machine (it moves on from the chosen moment), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
import time_machine
from sqlalchemy import func, select

from ccp.models import AuditEvent, Instance, Rollout, Upgrade
from ccp.services import rollouts, upgrades, windows
from ccp.services.fleet import fleet_rows, fleet_view
from ccp.services.rollout_preview import preview_rollout
from ccp.services.rollout_progress import rollout_waves
from ccp.services.windows import Window, state_at

UTC = timezone.utc
BERLIN = Window("0 2 * * *", 120, "Europe/Berlin")  # 02:00-04:00 Berlin time


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("now, is_open, ends_at, next_open", [
    # a winter day: 02:00 CET is 01:00 UTC
    ("2026-03-28T00:59:00+00:00", False, None, "2026-03-28T01:00:00+00:00"),
    ("2026-03-28T01:00:00+00:00", True, "2026-03-28T03:00:00+00:00", "2026-03-29T01:00:00+00:00"),
    ("2026-03-28T02:59:59+00:00", True, "2026-03-28T03:00:00+00:00", "2026-03-29T01:00:00+00:00"),
    ("2026-03-28T03:00:00+00:00", False, None, "2026-03-29T01:00:00+00:00"),
    # 29 March: the clocks jump from 02:00 CET to 03:00 CEST at 01:00 UTC; the window opens then, ends 04:00 CEST
    ("2026-03-29T00:30:00+00:00", False, None, "2026-03-29T01:00:00+00:00"),
    ("2026-03-29T01:30:00+00:00", True, "2026-03-29T02:00:00+00:00", "2026-03-30T00:00:00+00:00"),
    ("2026-03-29T02:00:00+00:00", False, None, "2026-03-30T00:00:00+00:00"),
    # a summer day: 02:00 CEST is 00:00 UTC
    ("2026-07-01T23:59:00+00:00", False, None, "2026-07-02T00:00:00+00:00"),
    ("2026-07-02T01:59:00+00:00", True, "2026-07-02T02:00:00+00:00", "2026-07-03T00:00:00+00:00"),
    # 25 October: 03:00 CEST goes back to 02:00 CET at 01:00 UTC; 02:00-04:00 wall time is three real hours
    ("2026-10-25T00:00:00+00:00", True, "2026-10-25T03:00:00+00:00", "2026-10-26T01:00:00+00:00"),
    ("2026-10-25T02:30:00+00:00", True, "2026-10-25T03:00:00+00:00", "2026-10-26T01:00:00+00:00"),
    ("2026-10-25T03:00:00+00:00", False, None, "2026-10-26T01:00:00+00:00"),
])
def test_a_berlin_window_on_the_wall_clock_through_both_clock_changes(now, is_open, ends_at, next_open):
    state = state_at(BERLIN, at(now))
    assert state.open is is_open
    assert state.ends_at == (at(ends_at) if ends_at else None)
    assert state.next_open == at(next_open)


@pytest.mark.parametrize("now, is_open, ends_at, next_open", [
    ("2026-01-01T23:29:00+00:00", False, None, "2026-01-01T23:30:00+00:00"),
    ("2026-01-01T23:45:00+00:00", True, "2026-01-02T01:00:00+00:00", "2026-01-02T23:30:00+00:00"),
    ("2026-01-02T00:30:00+00:00", True, "2026-01-02T01:00:00+00:00", "2026-01-02T23:30:00+00:00"),  # after midnight
    ("2026-01-02T01:00:00+00:00", False, None, "2026-01-02T23:30:00+00:00"),
])
def test_a_window_across_midnight(now, is_open, ends_at, next_open):
    state = state_at(Window("30 23 * * *", 90), at(now))
    assert (state.open, state.ends_at, state.next_open) == (is_open, at(ends_at) if ends_at else None, at(next_open))


def test_weekday_windows_skip_the_weekend_and_overlapping_starts_are_one_window():
    friday_night = at("2026-11-27T23:00:00+00:00")  # Friday; the next weekday 22:00 start is Monday
    weekdays = Window("0 22 * * 1-5", 60)
    assert state_at(weekdays, friday_night).next_open == at("2026-11-30T22:00:00+00:00")
    assert weekdays.label == "Mon–Fri 22:00–23:00 UTC" and BERLIN.label == "daily 02:00–04:00 Europe/Berlin"
    hourly = state_at(Window("0 * * * *", 120), at("2026-01-01T05:10:00+00:00"))
    assert hourly.open and hourly.ends_at > at("2026-01-08T00:00:00+00:00")  # never closes in between
    assert windows.window_state(SimpleNamespace(window_cron=None)).open  # no window: always open


@pytest.mark.parametrize("cron, minutes, zone, fields", [
    ("0 2 * *", 60, None, {"cron"}), ("61 2 * * *", 60, None, {"cron"}), ("0 2 30 2 *", 60, None, {"cron"}),
    ("0 0 2 * * *", 60, None, {"cron"}), ("", 60, "UTC", {"cron"}), (None, 60, None, {"cron"}),
    ("0 2 * * *", 0, None, {"minutes"}), ("0 2 * * *", 1441, None, {"minutes"}), ("0 2 * * *", "60", None, {"minutes"}),
    ("0 2 * * *", True, None, {"minutes"}), ("0 2 * * *", 60, "Mars/Olympus", {"timezone"}),
    ("0 2 * * *", 60, "../etc/passwd", {"timezone"}), ("0 2 * * *", 60, 5, {"timezone"}),
    ("nope", -1, "Nowhere", {"cron", "minutes", "timezone"}),
])
def test_a_bad_window_names_each_field_and_changes_nothing(app, db, tenant, cron, minutes, zone, fields):
    windows.set_window(tenant, "0 3 * * *", 30, "Europe/Berlin", actor="test")
    with pytest.raises(windows.WindowInvalid) as refused:
        windows.set_window(tenant, cron, minutes, zone, actor="test")
    assert set(refused.value.details) == fields and refused.value.status == 422
    db.session.expire_all()
    inst = db.session.get(Instance, tenant.id)
    assert (inst.window_cron, inst.window_minutes, inst.window_timezone) == ("0 3 * * *", 30, "Europe/Berlin")
    assert db.session.execute(select(func.count(AuditEvent.id)).filter_by(action="instance.window.set")).scalar() == 1


def test_holds_apply_until_their_end_and_are_audited(app, db, tenant):
    with time_machine.travel(at("2026-06-01T10:00:00+00:00")) as clock:
        with pytest.raises(windows.WindowInvalid) as refused:
            windows.set_hold(tenant, "  ", at("2026-05-01T00:00:00+00:00"), actor="user:ann")
        assert set(refused.value.details) == {"reason", "until"} and tenant.hold_reason is None
        hold = windows.set_hold(tenant, "quarter-end close", at("2026-06-02T08:00:00+02:00"), actor="user:ann")
        assert hold.sentence == "held until 2026-06-02 06:00 UTC by user:ann: quarter-end close"
        assert windows.active_hold(tenant) == hold
        clock.move_to(at("2026-06-02T06:00:01+00:00"))
        assert windows.active_hold(tenant) is None and windows.hold_of(tenant) == hold  # expired, still shown
        windows.set_hold(tenant, "until I say so", None, actor="user:bob")
        assert windows.active_hold(tenant).sentence == "held until released by user:bob: until I say so"
        windows.clear_hold(tenant, actor="user:bob")
        assert windows.hold_of(tenant) is None
    actions = list(db.session.execute(select(AuditEvent.action, AuditEvent.actor).where(
        AuditEvent.action.like("instance.hold.%")).order_by(AuditEvent.id)))
    assert actions == [("instance.hold.set", "user:ann"), ("instance.hold.set", "user:bob"),
                       ("instance.hold.clear", "user:bob")]


def _upgrades(db, rollout) -> dict[str, Upgrade]:
    rows = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars()
    return {u.instance.slug: u for u in rows}


def test_a_wave_starts_the_tenant_in_its_window_and_the_other_when_its_window_opens(app, db, tenant_factory,
                                                                                     run_worker):
    # 00:30 UTC on 29 March: 01:30 in Berlin, half an hour before the clocks jump (and the window opens)
    with time_machine.travel(at("2026-03-29T00:30:00+00:00")) as clock:
        tenant_factory(slug="win-open")  # no window: always open
        waits = tenant_factory(slug="win-closed")
        windows.set_window(waits, "0 2 * * *", 120, "Europe/Berlin", actor="user:ann")
        rollout = rollouts.start_rollout("v2", canary=2, actor="user:ann")
        run_worker()
        db.session.expire_all()
        rollout = db.session.get(Rollout, rollout.id)
        assert rollout.status == "running", rollout.error
        assert rollout.waves[0]["status"] == "running"
        assert rollout.waves[0]["waiting"] == {"win-closed": "2026-03-29T01:00:00+00:00"}
        assert {s: u.status for s, u in _upgrades(db, rollout).items()} == {"win-open": "succeeded"}
        tenants = {t.slug: t for t in rollout_waves(rollout)[0].tenants}
        assert tenants["win-closed"].status == "waiting"
        assert tenants["win-closed"].waits_until == at("2026-03-29T01:00:00+00:00")
        assert rollouts.nudge_stalled() == []  # housekeeping leaves it alone while the window is closed
        assert fleet_view(fleet_rows(), "held").counts["held"] == 1  # the fleet says who waits and until when
        row = next(r for r in fleet_rows() if r.slug == "win-closed")
        assert "waits for its maintenance window (opens 2026-03-29 01:00 UTC)" in dict(row.reasons)["held"]

        clock.move_to(at("2026-03-29T01:00:30+00:00"))  # 03:00:30 CEST: the window is open
        assert rollouts.nudge_stalled() == [rollout.id]
        run_worker()
        db.session.expire_all()
        rollout = db.session.get(Rollout, rollout.id)
        assert rollout.status == "succeeded", rollout.error
        assert rollout.waves[0]["waiting"] == {} and rollout.waves[0]["status"] == "succeeded"
        ups = _upgrades(db, rollout)
        assert {s: u.status for s, u in ups.items()} == {"win-open": "succeeded", "win-closed": "succeeded"}
        assert ups["win-closed"].created_at.replace(tzinfo=UTC) >= at("2026-03-29T01:00:00+00:00")
    events = [e.action for e in db.session.execute(select(AuditEvent).where(
        AuditEvent.action.like("rollout.wave.%")).order_by(AuditEvent.id)).scalars()]
    assert events == ["rollout.wave.start", "rollout.wave.window_open"]


def test_the_next_wave_waits_until_every_tenant_of_this_one_ran(app, db, tenant_factory, run_worker):
    with time_machine.travel(at("2026-01-10T09:00:00+00:00")) as clock:
        first = tenant_factory(slug="seq-a")
        windows.set_window(first, "0 10 * * *", 60, None, actor="test")
        tenant_factory(slug="seq-b")
        rollout = rollouts.start_rollout("v2", canary=1, wave_size=1, actor="user:ann")
        run_worker()
        db.session.expire_all()
        rollout = db.session.get(Rollout, rollout.id)
        assert [w["status"] for w in rollout.waves] == ["running", "pending"] and _upgrades(db, rollout) == {}
        clock.move_to(at("2026-01-10T10:00:00+00:00"))
        rollouts.advance(rollout.id)  # what housekeeping's nudge runs
        run_worker()
        db.session.expire_all()
        rollout = db.session.get(Rollout, rollout.id)
        assert rollout.status == "succeeded" and set(_upgrades(db, rollout)) == {"seq-a", "seq-b"}


def test_a_failing_wave_does_not_start_its_waiting_tenants(app, db, tenant_factory, run_worker):
    with time_machine.travel(at("2026-01-10T09:00:00+00:00")) as clock:
        tenant_factory(slug="fail-open")
        waits = tenant_factory(slug="fail-waits")
        windows.set_window(waits, "0 10 * * *", 60, None, actor="test")
        rollout = rollouts.start_rollout("broken", canary=2, actor="user:ann")  # "broken" never comes up healthy
        run_worker()
        db.session.refresh(rollout)
        assert rollout.status == "halted" and set(_upgrades(db, rollout)) == {"fail-open"}
        assert "fail-open rolled back" in rollout.error
        assert "not started: fail-waits (waiting for a maintenance window)" in rollout.error
        assert rollout.waves[0]["status"] == "failed" and rollout.waves[0]["not_started"] == ["fail-waits"]
        clock.move_to(at("2026-01-10T10:05:00+00:00"))
        assert rollouts.nudge_stalled() == []
        run_worker()
        assert set(_upgrades(db, rollout)) == {"fail-open"}


def test_a_held_tenant_is_skipped_with_its_reason_and_an_expired_hold_no_longer_is(app, db, tenant_factory,
                                                                                   run_worker):
    with time_machine.travel(at("2026-05-04T12:00:00+00:00")) as clock:
        tenant_factory(slug="hold-free")
        held = tenant_factory(slug="hold-kept")
        windows.set_hold(held, "customer demo on Tuesday", at("2026-05-06T00:00:00+00:00"), actor="user:ann")
        preview = preview_rollout("v2")
        assert preview.held == (("hold-kept", "held until 2026-05-06 00:00 UTC by user:ann: customer demo on "
                                              "Tuesday"),)
        assert [t.slug for t in preview.tenants] == ["hold-free"]
        rollout = rollouts.start_rollout("v2", actor="user:bob", expect=preview.digest)
        assert rollout.skipped == [{"slug": "hold-kept", "reason": "held until 2026-05-06 00:00 UTC by user:ann: "
                                                                   "customer demo on Tuesday"}]
        assert rollouts.skipped_of(rollout) == ((), (("hold-kept", rollout.skipped[0]["reason"]),))
        run_worker()
        db.session.refresh(rollout)
        assert rollout.status == "succeeded" and set(_upgrades(db, rollout)) == {"hold-free"}
        db.session.refresh(held)
        assert held.image_tag == "v1"
        row = next(r for r in fleet_rows() if r.slug == "hold-kept")
        assert ("held", "held until 2026-05-06 00:00 UTC by user:ann: customer demo on Tuesday") in row.reasons

        clock.move_to(at("2026-05-06T00:00:01+00:00"))  # the hold has ended
        assert not any(flag == "held" for flag, _ in next(r for r in fleet_rows() if r.slug == "hold-kept").reasons)
        again = rollouts.start_rollout("v2", actor="user:bob")
        assert again.skipped == ["hold-free"] and again.waves[0]["instances"] == [held.id]
        run_worker()
        db.session.refresh(held)
        assert held.image_tag == "v2"


def test_a_tenant_held_after_planning_is_left_out_of_its_wave_without_failing_it(app, db, tenant_factory, run_worker):
    tenant_factory(slug="late-a")
    late = tenant_factory(slug="late-b")
    rollout = rollouts.start_rollout("v2", canary=2, actor="user:ann")
    windows.set_hold(late, "found a bug", None, actor="user:bob")
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "succeeded" and set(_upgrades(db, rollout)) == {"late-a"}
    assert rollout.waves[0]["held"] == {"late-b": "held until released by user:bob: found a bug"}
    tenants = {t.slug: t for t in rollout_waves(rollout)[0].tenants}
    assert tenants["late-b"].status == "held" and "found a bug" in tenants["late-b"].error


def test_cancel_while_waiting_ends_the_rollout_without_starting_the_waiting_tenants(app, db, tenant_factory,
                                                                                   run_worker):
    with time_machine.travel(at("2026-02-01T12:00:00+00:00")) as clock:
        tenant_factory(slug="stop-open")
        waits = tenant_factory(slug="stop-closed")
        windows.set_window(waits, "0 2 * * *", 60, "America/New_York", actor="test")
        rollout = rollouts.start_rollout("v2", canary=2, actor="user:ann")
        run_worker()
        db.session.refresh(rollout)
        assert rollout.waves[0]["waiting"] == {"stop-closed": "2026-02-02T07:00:00+00:00"}  # 02:00 EST
        rollouts.cancel_rollout(rollout, actor="user:bob")
        run_worker()
        db.session.expire_all()
        rollout = db.session.get(Rollout, rollout.id)
        assert rollout.status == "cancelled" and "stop-closed" in rollout.error
        assert rollout.waves[0]["status"] == "cancelled" and rollout.waves[0]["not_started"] == ["stop-closed"]
        clock.move_to(at("2026-02-02T07:05:00+00:00"))  # its window opens: nothing starts it any more
        assert rollouts.nudge_stalled() == []
        run_worker()
        assert set(_upgrades(db, rollout)) == {"stop-open"}
        tenants = {t.slug: t for t in rollout_waves(rollout)[0].tenants}
        assert tenants["stop-closed"].status == "not_started" and "rollout ended" in tenants["stop-closed"].error


def test_a_manual_start_outside_the_window_asks_first_and_is_audited_when_confirmed(app, db, tenant):
    with time_machine.travel(at("2026-03-03T12:00:00+00:00")):  # a Tuesday, 13:00 in Berlin
        windows.set_window(tenant, "0 2 * * *", 120, "Europe/Berlin", actor="test")
        for start in (upgrades.start_quick, upgrades.start_full):
            with pytest.raises(upgrades.OutsideWindow) as refused:
                start(tenant, actor="user:ann")
            assert refused.value.status == 409 and refused.value.code == "outside_window"
            assert refused.value.details["nextOpen"] == "2026-03-04T01:00:00+00:00"
            assert "opens Wed 02:00 Europe/Berlin" in refused.value.message
        with pytest.raises(upgrades.OutsideWindow):
            upgrades.start_release(tenant, "v2", actor="user:ann")
        assert db.session.execute(select(func.count(Upgrade.id))).scalar() == 0
        refusals = db.session.execute(select(AuditEvent.action, AuditEvent.result).where(
            AuditEvent.result == "refused:outside_window").order_by(AuditEvent.id)).all()
        assert [a for a, _ in refusals] == ["upgrade.start.quick", "upgrade.start.full", "upgrade.start.release"]
        upgrade = upgrades.start_quick(tenant, actor="user:ann", outside_window_ok=True)
        event = db.session.execute(select(AuditEvent).filter_by(action="upgrade.start.quick", result="ok")).scalar_one()
        assert event.detail == {"upgrade_id": upgrade.id, "to_tag": "v1", "outside_window": True}


def test_a_manual_start_of_a_held_tenant_asks_first(app, db, tenant):
    windows.set_hold(tenant, "waiting for the customer", None, actor="user:ann")
    with pytest.raises(upgrades.TenantHeld) as refused:
        upgrades.start_quick(tenant, actor="user:bob", outside_window_ok=True)
    assert refused.value.code == "held" and "waiting for the customer" in refused.value.message
    assert "does not lock" in refused.value.message
    upgrade = upgrades.start_quick(tenant, actor="user:bob", held_ok=True)
    event = db.session.execute(select(AuditEvent).filter_by(action="upgrade.start.quick", result="ok")).scalar_one()
    assert event.detail == {"upgrade_id": upgrade.id, "to_tag": "v1", "held": True}


def test_an_open_window_needs_no_confirmation(app, db, tenant):
    with time_machine.travel(at("2026-03-03T01:30:00+00:00")):  # 02:30 in Berlin
        windows.set_window(tenant, "0 2 * * *", 120, "Europe/Berlin", actor="test")
        assert windows.window_state(tenant).ends_at == at("2026-03-03T03:00:00+00:00")
        upgrade = upgrades.start_quick(tenant, actor="user:ann")
        assert upgrade.status == "queued"
        assert db.session.execute(select(AuditEvent).filter_by(action="upgrade.start.quick")).scalar_one().detail \
            == {"upgrade_id": upgrade.id, "to_tag": "v1"}


def test_the_window_can_be_removed_and_a_changed_window_moves_the_wait(app, db, tenant_factory, run_worker):
    with time_machine.travel(at("2026-04-01T12:00:00+00:00")):
        waits = tenant_factory(slug="move-a")
        windows.set_window(waits, "0 2 * * *", 60, None, actor="test")
        rollout = rollouts.start_rollout("v2", actor="user:ann")
        run_worker()
        db.session.refresh(rollout)
        assert rollout.waves[0]["waiting"] == {"move-a": "2026-04-02T02:00:00+00:00"}
        windows.clear_window(waits, actor="user:ann")
        assert rollouts.nudge_stalled() == [rollout.id]  # the tenant may start now
        run_worker()
        db.session.refresh(rollout)
        assert rollout.status == "succeeded"
