"""Rollouts on a REAL Docker engine: three tenants, each behind its own agent, rolled out in waves by the worker.

One scenario, in order: v2 goes out canary-first and every page serves v2; then the broken tag halts at the canary,
which rolls back and serves v2 again, while the tenants of later waves are never touched. SQLite only: the database
side is covered on both databases by tests/upgrades/test_rollouts.py.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from ccp.models import Instance, Upgrade, as_utc
from ccp.services import rollouts
from tests.e2e import upgrade_helpers as uh


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_waves_on_real_tenants_then_a_broken_tag_halts_at_the_canary(app, db, real_tenant, run_worker):
    tenants = [real_tenant() for _ in range(3)]
    slugs = [t.slug for t, _ in tenants]

    rollout = rollouts.start_rollout("v2", instances=slugs, canary=1, wave_size=2, actor="user:e2e")
    run_worker()
    db.session.expire_all()
    rollout = db.session.get(type(rollout), rollout.id)
    assert rollout.status == "succeeded", rollout.error
    ups = {u.instance.slug: u for u in db.session.execute(
        select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars()}
    assert all(u.status == "succeeded" for u in ups.values()) and set(ups) == set(slugs)
    assert all(as_utc(ups[s].started_at) >= as_utc(ups[slugs[0]].finished_at) for s in slugs[1:]), \
        "a later wave started before the canary finished"
    for t, _ in tenants:
        assert uh.page_version(t.url) == "v2" and t.image() == "127.0.0.1:5055/ccp-test/web:v2"

    trees = {t.slug: t.tree() for t, _ in tenants}
    halted = rollouts.start_rollout("broken", instances=slugs, canary=1, wave_size=2, actor="user:e2e")
    run_worker()
    db.session.expire_all()
    halted = db.session.get(type(halted), halted.id)
    assert halted.status == "halted" and f"{slugs[0]} rolled back" in halted.error, halted.error
    canary = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == halted.id)).scalars().all()
    assert [u.instance.slug for u in canary] == [slugs[0]]
    for t, inst in tenants:  # the canary is back on v2; the others never changed
        assert uh.page_version(t.url) == "v2" and t.image() == "127.0.0.1:5055/ccp-test/web:v2"
        assert t.tree() == trees[t.slug]
        assert db.session.get(Instance, inst.id).image_tag == "v2"
