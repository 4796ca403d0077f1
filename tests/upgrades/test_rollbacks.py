"""Rolling a rollout back (ccp.services.rollbacks) through the service layer and the RQ worker, on real install dirs
(dry-run runtime), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccp.models import AuditEvent, Instance, Rollout, Upgrade
from ccp.services import rollbacks, rollouts, upgrades
from ccp.services.rollout_progress import rollout_waves
from ccp.services.rollouts import RolloutConflict, RolloutInvalid, RolloutStale


def _rollout(db, run_worker, tag, slugs, **kwargs) -> Rollout:
    rollout = rollouts.start_rollout(tag, instances=slugs, actor="user:ann", **kwargs)
    run_worker()
    db.session.expire_all()
    return db.session.get(Rollout, rollout.id)


def test_a_rollout_is_rolled_back_tenant_by_tenant_to_each_ones_previous_tag(app, db, tenant_factory, run_worker):
    a, b = tenant_factory(slug="rb-a"), tenant_factory(slug="rb-b", tag="v1.5")
    c = tenant_factory(slug="rb-c")
    first = upgrades.start_release(a, "v1", actor="t")  # a's v1 is a recorded release, with a digest
    run_worker()
    db.session.refresh(first)
    first.image_digest = "sha256:" + "c" * 64
    db.session.commit()
    forward = _rollout(db, run_worker, "v2", ["rb-a", "rb-b", "rb-c"], canary=1, wave_size=1)
    assert forward.status == "succeeded", forward.error
    moved = upgrades.start_release(db.session.get(Instance, c.id), "v3", actor="t")  # c moved on since
    run_worker()
    db.session.refresh(moved)
    assert moved.status == "succeeded"

    plan = rollbacks.plan_rollback(forward, canary=1, wave_size=5)
    assert [[(t.slug, t.from_tag, t.to_tag) for t in w] for w in plan.waves] == [[("rb-a", "v2", "v1")],
                                                                               [("rb-b", "v2", "v1.5")]]
    assert plan.waves[0][0].release_id == first.id and plan.waves[0][0].image_digest == "sha256:" + "c" * 64
    assert plan.waves[1][0].release_id is None  # b's v1.5 came from before CCP recorded releases
    assert [(s.slug, s.reason) for s in plan.skipped] == [
        ("rb-c", "has moved on since: it runs v3 now, not v2 (roll it back from its History tab)")]
    assert plan.tag_label == "v1, v1.5"

    back = rollbacks.start_rollback(forward, canary=1, wave_size=5, actor="user:bob", expect=plan.digest)
    assert (back.kind, back.rollback_of, back.tag, back.skipped) == ("rollback", forward.id, "v1, v1.5", ["rb-c"])
    assert [(w["instances"], w["targets"]) for w in back.waves] == [
        ([a.id], {str(a.id): {"tag": "v1", "digest": "sha256:" + "c" * 64, "upgrade_id": first.id}}),
        ([b.id], {str(b.id): {"tag": "v1.5", "digest": None, "upgrade_id": None}})]
    # before it runs, the progress names each tenant's own target
    assert [(t.slug, t.to_tag, t.status) for w in rollout_waves(back) for t in w.tenants] == [
        ("rb-a", "v1", "not_started"), ("rb-b", "v1.5", "not_started")]
    run_worker()
    db.session.expire_all()
    back = db.session.get(Rollout, back.id)
    assert back.status == "succeeded", back.error
    ups = {u.instance.slug: u for u in db.session.execute(
        select(Upgrade).where(Upgrade.rollout_id == back.id)).scalars()}
    assert {s: (u.status, u.from_tag, u.to_tag, u.rollback_of) for s, u in ups.items()} == {
        "rb-a": ("succeeded", "v2", "v1", first.id), "rb-b": ("succeeded", "v2", "v1.5", None)}
    assert ups["rb-a"].image_digest == "sha256:" + "c" * 64 and ups["rb-a"].plan_hash
    assert [db.session.get(Instance, i.id).image_tag for i in (a, b, c)] == ["v1", "v1.5", "v3"]
    assert rollbacks.rolled_back_by(forward) == [back.id]
    event = AuditEvent.query.filter_by(action="rollout.rollback").one()
    assert event.actor == "user:bob" and event.detail["rollback_of"] == forward.id


def test_tenants_already_back_or_never_started_are_skipped_with_the_reason(app, db, tenant_factory, run_worker):
    tenant_factory(slug="hx-a"), tenant_factory(slug="hx-b")
    halted = _rollout(db, run_worker, "broken", ["hx-a", "hx-b"], canary=1, wave_size=1)
    assert halted.status == "halted"
    plan = rollbacks.plan_rollback(halted)
    assert plan.waves == ()
    up = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == halted.id)).scalar_one()
    assert [(s.slug, s.reason) for s in plan.skipped] == [
        ("hx-a", f"is back on v1 already (its upgrade #{up.id} rolled back by itself)"),
        ("hx-b", "was not upgraded by this rollout")]
    with pytest.raises(rollbacks.RollbackNotPossible) as nothing:
        rollbacks.start_rollback(halted, actor="t")
    assert nothing.value.status == 409 and "left no tenant to roll back" in nothing.value.message
    assert Rollout.query.count() == 1


def test_a_held_tenant_is_skipped_with_its_hold(app, db, tenant_factory, run_worker):
    from ccp.services import windows

    tenant_factory(slug="hd-a")
    b = tenant_factory(slug="hd-b")
    forward = _rollout(db, run_worker, "v2", ["hd-a", "hd-b"])
    windows.set_hold(db.session.get(Instance, b.id), "quarter-end close", actor="user:ann")
    plan = rollbacks.plan_rollback(forward)
    assert [t.slug for t in plan.tenants] == ["hd-a"]
    assert [(s.slug, s.reason) for s in plan.skipped] == [
        ("hd-b", "is held until released by user:ann: quarter-end close")]


def test_refusals_start_nothing(app, db, tenant_factory, run_worker):
    tenant_factory(slug="rf-a"), tenant_factory(slug="rf-b")
    done = _rollout(db, run_worker, "v2", ["rf-a"])
    running = rollouts.start_rollout("v3", instances=["rf-b"], actor="t")  # not run: stays running
    count = Rollout.query.count()
    with pytest.raises(rollbacks.RollbackNotPossible) as still:
        rollbacks.plan_rollback(running)
    assert "still running" in still.value.message
    with pytest.raises(RolloutInvalid) as bad:
        rollbacks.plan_rollback(done, canary=0, wave_size="5")
    assert set(bad.value.details) == {"canary", "waveSize"}
    plan = rollbacks.plan_rollback(done)
    assert plan.running == (running.id, "v3")
    with pytest.raises(RolloutConflict) as busy:
        rollbacks.start_rollback(done, actor="t", expect=plan.digest)
    assert f"#{running.id}" in busy.value.message and "one rollout runs at a time" in busy.value.message
    with pytest.raises(RolloutStale):
        rollbacks.start_rollback(done, actor="t", expect="0" * 64)
    assert Rollout.query.count() == count
    running.status = "cancelled"
    db.session.commit()
    back = rollbacks.start_rollback(done, actor="t", expect=plan.digest)
    with pytest.raises(rollbacks.RollbackNotPossible):  # a rollback is not rolled back
        back.status = "succeeded"
        db.session.commit()
        rollbacks.plan_rollback(back)
