"""Rollouts in waves through the service layer and the RQ worker, on real install dirs (dry-run runtime)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ccp.extensions import get_queue
from ccp.models import Rollout, Upgrade, as_utc
from ccp.services import rollouts
from ccp.services.rollout_progress import rollout_waves
from tests.factories import make_instance


def _upgrades(db, rollout) -> dict[str, Upgrade]:
    rows = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars()
    return {u.instance.slug: u for u in rows}


def test_waves_run_in_order_and_tenants_on_the_tag_are_skipped(app, db, tenant_factory, run_worker):
    a, b, c = (tenant_factory(slug=f"wave-{x}") for x in "abc")
    done = tenant_factory(slug="wave-done", tag="v2")
    rollout = rollouts.start_rollout("v2", canary=1, wave_size=2, actor="user:ann")
    assert rollout.status == "running" and rollout.skipped == ["wave-done"]
    assert [w["instances"] for w in rollout.waves] == [[a.id], [b.id, c.id]]
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "succeeded", rollout.error
    assert [w["status"] for w in rollout.waves] == ["succeeded", "succeeded"]
    ups = _upgrades(db, rollout)
    assert set(ups) == {"wave-a", "wave-b", "wave-c"} and all(u.status == "succeeded" for u in ups.values())
    assert all(u.plan_hash and u.actor == f"rollout:{rollout.id}" for u in ups.values())
    canary_end = as_utc(ups["wave-a"].finished_at)
    assert all(as_utc(ups[s].created_at) >= canary_end for s in ("wave-b", "wave-c")), "wave 2 started too early"
    for inst in (a, b, c, done):
        db.session.refresh(inst)
        assert inst.image_tag == "v2"
    waves = rollout_waves(rollout)
    assert [[t.slug for t in w.tenants] for w in waves] == [["wave-a"], ["wave-b", "wave-c"]]
    assert [w.number for w in waves] == [1, 2] and all(w.started_at and w.finished_at for w in waves)
    assert all(t.upgrade_id == ups[t.slug].id and not t.deleted for w in waves for t in w.tenants)
    for t in (t for w in waves for t in w.tenants):  # from which tag to which, and how long it took
        assert (t.from_tag, t.to_tag) == ("v1", "v2") and t.started_at and t.finished_at
        assert t.duration_s == (as_utc(t.finished_at) - as_utc(t.started_at)).total_seconds() >= 0


def test_a_failed_canary_halts_and_leaves_the_rest_untouched(app, db, tenant_factory, run_worker):
    tenant_factory(slug="halt-a"), tenant_factory(slug="halt-b"), tenant_factory(slug="halt-c")
    rollout = rollouts.start_rollout("broken", canary=1, wave_size=5, actor="webhook:ci", source="webhook")
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "halted"
    assert "wave 1 did not succeed" in rollout.error and "halt-a rolled back" in rollout.error
    assert [w["status"] for w in rollout.waves] == ["failed", "pending"]
    assert set(_upgrades(db, rollout)) == {"halt-a"}


def test_a_tenant_that_cannot_start_fails_its_wave_after_the_others_finish(app, db, tenant_factory, run_worker):
    tenant_factory(slug="mix-a")
    dead = make_instance(slug="mix-dead")  # remote driver, nothing listens at its agent URL
    tenant_factory(slug="mix-z")
    rollout = rollouts.start_rollout("v2", instances=["mix-a", "mix-dead", "mix-z"], canary=2, wave_size=5,
                                     actor="user:ann")
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "halted"
    assert "mix-dead could not start" in rollout.error and "127.0.0.1:9" in rollout.error
    ups = _upgrades(db, rollout)
    assert ups["mix-a"].status == "succeeded" and "mix-dead" not in ups and "mix-z" not in ups
    tenants = rollout_waves(rollout)[0].tenants
    assert {t.slug: t.status for t in tenants} == {"mix-a": "succeeded", "mix-dead": "could_not_start"}
    assert "127.0.0.1:9" in tenants[1].error and tenants[1].upgrade_id is None
    assert (tenants[1].from_tag, tenants[1].to_tag, tenants[1].duration_s) == ("v1", "v2", None)  # its current tag
    assert dead.image_tag == "v1"


def test_cancel_lets_the_wave_in_flight_finish_and_starts_no_other(app, db, tenant_factory, run_worker):
    tenant_factory(slug="stop-a"), tenant_factory(slug="stop-b")
    rollout = rollouts.start_rollout("v2", canary=1, wave_size=1, actor="user:ann")
    rollouts.advance(rollout.id)  # wave 1 started (its upgrade is queued)
    rollouts.cancel_rollout(rollout, actor="user:bob")
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "cancelled" and rollout.error == "cancelled before wave 2"
    assert {s: u.status for s, u in _upgrades(db, rollout).items()} == {"stop-a": "succeeded"}
    with pytest.raises(rollouts.RolloutNotCancellable):
        rollouts.cancel_rollout(rollout, actor="user:bob")


def test_one_running_rollout_at_a_time(app, db, tenant_factory):
    tenant_factory(slug="one-a")
    first = rollouts.start_rollout("v2", actor="user:ann")
    with pytest.raises(rollouts.RolloutConflict) as refused:
        rollouts.start_rollout("v3", actor="user:bob")
    assert refused.value.details == {"running_rollout_id": first.id}
    assert db.session.execute(select(func.count(Rollout.id))).scalar() == 1


@pytest.mark.parametrize("kwargs, field", [
    (dict(tag="bad tag!"), "tag"), (dict(tag=None), "tag"), (dict(tag="v2", canary=0), "canary"),
    (dict(tag="v2", wave_size=True), "waveSize"), (dict(tag="v2", instances=["nope"]), "instances"),
    (dict(tag="v2", instances=[]), "instances"),
])
def test_bad_input_is_refused_and_records_nothing(app, db, tenant_factory, kwargs, field):
    tenant_factory(slug="bad-a")
    kwargs = dict(kwargs)  # the parameters are shared by both database runs
    tag = kwargs.pop("tag")
    with pytest.raises(rollouts.RolloutInvalid) as refused:
        rollouts.start_rollout(tag, actor="user:ann", **kwargs)
    assert field in refused.value.details
    assert db.session.execute(select(func.count(Rollout.id))).scalar() == 0
    assert get_queue().count == 0


def test_nothing_to_do_is_recorded_as_succeeded(app, db, tenant_factory):
    tenant_factory(slug="done-a", tag="v2")
    rollout = rollouts.start_rollout("v2", actor="user:ann")
    assert rollout.status == "succeeded" and rollout.waves == [] and rollout.skipped == ["done-a"]
    assert get_queue().count == 0


def test_housekeeping_moves_on_a_rollout_whose_event_was_lost(app, db, tenant_factory, run_worker):
    tenant_factory(slug="lost-a")
    rollout = rollouts.start_rollout("v2", actor="user:ann")
    get_queue().empty()  # the advance job is lost
    assert rollouts.nudge_stalled() == []  # too recent to call it stalled
    rollout.created_at = rollout.created_at - timedelta(seconds=rollouts.STALL_S + 5)
    db.session.commit()
    assert rollouts.nudge_stalled() == [rollout.id]
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "succeeded"


def test_a_tenant_deleted_before_its_wave_is_flagged_deleted_and_halts_the_rollout(app, db, tenant_factory,
                                                                                  run_worker):
    from ccp.services.instances import delete_instance

    tenant_factory(slug="del-a")
    gone = tenant_factory(slug="del-b")
    gone_id = gone.id
    rollout = rollouts.start_rollout("v2", canary=1, wave_size=1, actor="user:ann")
    delete_instance(gone, actor="user:ann")
    run_worker()
    db.session.refresh(rollout)
    assert rollout.status == "halted" and f"#{gone_id} could not start" in rollout.error
    first, second = rollout_waves(rollout)
    assert [t.deleted for t in first.tenants] == [False] and first.tenants[0].label == "del-a"
    (tenant,) = second.tenants
    assert tenant.deleted and tenant.slug is None and tenant.instance_id == gone_id
    assert tenant.label == f"#{gone_id} (deleted)" and tenant.status == "could_not_start" and tenant.upgrade_id is None
    assert tenant.error == "the instance was deleted"


def test_the_wave_plan_is_the_one_rule_and_its_digest_binds_a_start(app, db, tenant_factory):
    """plan_waves decides who goes in which wave (the preview shows it, the start runs it); a start carrying a
    preview's digest is refused when the tenants or waves changed since, and records nothing."""
    for slug in ("plan-a", "plan-b", "plan-c"):
        tenant_factory(slug=slug)
    tenant_factory(slug="plan-on", tag="v2")
    plan = rollouts.plan_waves("v2", canary=2, wave_size=5)
    assert [[i.slug for i in w] for w in plan.waves] == [["plan-a", "plan-b"], ["plan-c"]]
    assert [i.slug for i in plan.skipped] == ["plan-on"] and len(plan.digest) == 64
    assert rollouts.plan_waves("v2", canary=2, wave_size=5).digest == plan.digest
    assert rollouts.plan_waves("v2", canary=1, wave_size=5).digest != plan.digest  # other waves
    tenant_factory(slug="plan-d")  # the fleet grew after the preview
    with pytest.raises(rollouts.RolloutStale) as refused:
        rollouts.start_rollout("v2", canary=2, wave_size=5, actor="user:ann", expect=plan.digest)
    assert refused.value.status == 409 and "preview again" in refused.value.message
    assert db.session.execute(select(func.count(Rollout.id))).scalar() == 0 and get_queue().count == 0
    fresh = rollouts.plan_waves("v2", canary=2, wave_size=5).digest
    rollout = rollouts.start_rollout("v2", canary=2, wave_size=5, actor="user:ann", expect=fresh)
    assert [len(w["instances"]) for w in rollout.waves] == [2, 2] and rollout.skipped == ["plan-on"]


def test_the_rollout_lock_is_named_under_this_install_s_queue(app, db, tenant_factory, run_worker):
    """Another CCP on the same Redis database (another CCP_QUEUE) holding a lock for a rollout with the same id, or
    the old un-namespaced name, does not stop this install's rollout."""
    from ccp.extensions import get_redis

    tenant_factory(slug="ns-a")
    rollout = rollouts.start_rollout("v2", instances=["ns-a"], canary=1, wave_size=1, actor="user:ann")
    others = [get_redis().lock(name, timeout=60) for name in
              (f"ccp:rollout:{rollout.id}", f"ccp:another-install:rollout:{rollout.id}")]
    assert all(lock.acquire(blocking=False) for lock in others)
    try:
        run_worker()
        db.session.expire_all()
        assert db.session.get(Rollout, rollout.id).status == "succeeded"
    finally:
        for lock in others:
            lock.release()


def test_an_advance_that_died_mid_wave_does_not_start_a_tenant_twice(app, db, tenant_factory, run_worker):
    """A worker killed while it started a wave leaves the wave 'pending' with some upgrades already queued; the next
    `advance` (housekeeping's nudge) starts the others and never a second upgrade for the same tenant."""
    from ccp.services import upgrades as upgrade_svc
    from ccp.services.rollout_queue import LOCK_TTL_S, LOCK_S

    a, b, c = (tenant_factory(slug=f"died-{x}") for x in "abc")
    get_queue().empty()
    rollout = rollouts.start_rollout("v2", canary=2, wave_size=1, actor="user:ann")
    get_queue().empty()  # the first `advance` is lost with its worker...
    rollout = db.session.get(Rollout, rollout.id)
    assert rollout.waves[0]["status"] == "pending" and rollout.waves[0]["instances"] == [a.id, b.id]
    plan = upgrade_svc.plan_release(a, "v2")  # ...after it had started the first tenant of wave 1
    first = upgrade_svc.start_release(a, "v2", plan=plan.plan_hash, actor=f"rollout:{rollout.id}",
                                      rollout_id=rollout.id, plan_checked=True)
    rollouts.advance(rollout.id)  # what housekeeping's nudge runs
    run_worker()
    db.session.expire_all()
    rollout = db.session.get(Rollout, rollout.id)
    assert rollout.status == "succeeded", rollout.error
    ups = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars().all()
    assert sorted(u.instance.slug for u in ups) == ["died-a", "died-b", "died-c"]  # one each
    assert next(u for u in ups if u.instance_id == a.id).id == first.id
    assert LOCK_TTL_S * 10 <= LOCK_S  # a dead holder's lock lapses long before a waiting advance gives up


class _HeldAgent:
    """An agent address on loopback that accepts connections and answers nothing until released, then hangs up:
    a tenant whose plan is still being made while the rest of its wave starts."""

    def __init__(self):
        import socket
        import threading

        self.release = threading.Event()
        self.asked = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        conns = []
        self._sock.settimeout(0.1)
        while not self.release.is_set():
            try:
                conns.append(self._sock.accept()[0])
                self.asked.set()
            except OSError:
                continue
        for conn in conns:
            conn.close()
        self._sock.close()


def _advance_in_thread(app, rollout_id):
    import threading

    def run():
        with app.app_context():
            rollouts.advance(rollout_id)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wave_now(db, rollout_id) -> tuple[dict, dict[str, str]]:
    db.session.expire_all()
    rollout = db.session.get(Rollout, rollout_id)
    return rollout.waves[0], {s: u.status for s, u in _upgrades(db, rollout).items()}


def _start_with_a_slow_tenant(app, tenant_factory, prefix: str, canary: int):
    """Tenants <prefix>-a, <prefix>-slow (its agent answers only when released) and <prefix>-z rolled out to v2 with
    this canary; the first `advance` runs in a thread. Returns (held agent, rollout, thread)."""
    agent = _HeldAgent()
    tenant_factory(slug=f"{prefix}-a")
    make_instance(slug=f"{prefix}-slow", agent_url=agent.url)
    tenant_factory(slug=f"{prefix}-z")
    rollout = rollouts.start_rollout("v2", instances=[f"{prefix}-a", f"{prefix}-slow", f"{prefix}-z"],
                                     canary=canary, wave_size=1, actor="user:ann")
    get_queue().empty()
    return agent, rollout, _advance_in_thread(app, rollout.id)


def _until_queued(db, rollout_id, expected: dict[str, str]) -> tuple[dict, dict[str, str]]:
    deadline = time.monotonic() + 20
    wave, statuses = _wave_now(db, rollout_id)
    while time.monotonic() < deadline and statuses != expected:
        time.sleep(0.05)
        wave, statuses = _wave_now(db, rollout_id)
    return wave, statuses


def test_a_wave_is_running_while_its_upgrades_are_queued_and_plans_do_not_wait_for_each_other(
        app, db, tenant_factory, run_worker):
    """Plans are made in parallel: the quick tenants' upgrades are queued while a slow agent still holds its plan,
    and the wave says running (with when it started) from its first upgrade on, not after the last plan."""
    agent, rollout, thread = _start_with_a_slow_tenant(app, tenant_factory, "par", canary=3)
    try:
        assert agent.asked.wait(10)
        wave, statuses = _until_queued(db, rollout.id, {"par-a": "queued", "par-z": "queued"})
        assert statuses == {"par-a": "queued", "par-z": "queued"}, "the quick tenants waited for the slow one"
        assert wave["status"] == "running" and wave["started_at"] and wave["starting"]
        shown = {t.slug: t.status for t in rollout_waves(db.session.get(Rollout, rollout.id))[0].tenants}
        assert shown == {"par-a": "queued", "par-slow": "planning", "par-z": "queued"}
    finally:
        agent.release.set()
        thread.join(60)
    wave, _ = _wave_now(db, rollout.id)
    assert "starting" not in wave and "par-slow" in wave["errors"]
    run_worker()
    db.session.expire_all()
    rollout = db.session.get(Rollout, rollout.id)
    assert rollout.status == "halted" and "par-slow could not start" in rollout.error


def test_a_cancel_while_a_wave_is_being_started_stops_the_tenants_not_started_yet(app, db, tenant_factory,
                                                                                   run_worker):
    agent, rollout, thread = _start_with_a_slow_tenant(app, tenant_factory, "cut", canary=2)
    try:
        assert _until_queued(db, rollout.id, {"cut-a": "queued"})[1] == {"cut-a": "queued"}
        rollouts.cancel_rollout(db.session.get(Rollout, rollout.id), actor="user:bob")
    finally:
        agent.release.set()
        thread.join(60)
    run_worker()
    db.session.expire_all()
    rollout = db.session.get(Rollout, rollout.id)
    assert rollout.status == "cancelled", rollout.error
    assert rollout.error == "cancelled in wave 1 before cut-slow started"
    assert {s: u.status for s, u in _upgrades(db, rollout).items()} == {"cut-a": "succeeded"}
    assert [w["status"] for w in rollout.waves] == ["cancelled", "pending"]
    tenants = {t.slug: t for t in rollout_waves(rollout)[0].tenants}
    assert tenants["cut-slow"].status == "not_started" and "cancelled" in tenants["cut-slow"].error


def test_an_advance_that_died_while_its_wave_was_starting_starts_the_rest(app, db, tenant_factory, run_worker):
    """The wave is saved running with `starting` before its first plan; a worker killed then leaves it so, and the
    next `advance` starts the tenants not started yet (never one twice)."""
    from ccp.services import upgrades as upgrade_svc

    a, b = tenant_factory(slug="rest-a"), tenant_factory(slug="rest-b")
    rollout = rollouts.start_rollout("v2", canary=2, wave_size=1, actor="user:ann")
    get_queue().empty()
    first = upgrade_svc.start_release(a, "v2", plan=upgrade_svc.plan_release(a, "v2").plan_hash,
                                      actor=f"rollout:{rollout.id}", rollout_id=rollout.id, plan_checked=True)
    rollout.waves = [{**rollout.waves[0], "status": "running", "started_at": "2026-01-01T00:00:00+00:00",
                      "starting": True}]
    db.session.commit()
    rollouts.advance(rollout.id)
    wave, statuses = _wave_now(db, rollout.id)
    assert statuses == {"rest-a": "queued", "rest-b": "queued"} and "starting" not in wave
    assert wave["started_at"] == "2026-01-01T00:00:00+00:00"  # when it really started
    run_worker()
    db.session.expire_all()
    rollout = db.session.get(Rollout, rollout.id)
    assert rollout.status == "succeeded", rollout.error
    ups = _upgrades(db, rollout)
    assert set(ups) == {"rest-a", "rest-b"} and ups["rest-a"].id == first.id and b.id == ups["rest-b"].instance_id
