"""Rolling back on a REAL Docker engine (issue #16 acceptance): a healthy v2 tenant goes back to its v1 release with
files, .env and containers as they were; and a finished rollout of two tenants is rolled back, each to its previous
tag. CCP service layer -> RQ job (real worker) -> real agent (signed HTTP) -> `docker compose` -> images from the
local registry (tests/e2e/images.py), tenants rendered from the e2e-web set (tests/e2e/upgrade_helpers.py).

SQLite only: the database side of history and rollbacks runs on both databases in tests/upgrades/test_history.py
and test_rollbacks.py; here what matters is what Docker and the host end up with.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from ccp.models import Instance, Rollout, Upgrade
from ccp.services import history, rollbacks, rollouts, upgrades
from tests.e2e import upgrade_helpers as uh

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WEB = "127.0.0.1:5055/ccp-test/web"


def _run(db, run_worker, upgrade: Upgrade) -> Upgrade:
    run_worker()
    db.session.expire_all()
    upgrade = db.session.get(Upgrade, upgrade.id)
    assert upgrade.status == "succeeded", (upgrade.status, upgrade.error, [(s.name, s.status, s.output_tail)
                                                                           for s in upgrade.steps])
    return upgrade


def _release(db, run_worker, inst, tag: str) -> Upgrade:
    inst = db.session.get(Instance, inst.id)
    plan = upgrades.preview_release(inst, tag).plan_hash
    return _run(db, run_worker, upgrades.start_release(inst, tag, plan=plan, actor="user:e2e"))


def _state(t: uh.RealTenant) -> dict:
    """What "as they were" compares: every file (with .env) byte for byte, the running images, the page, the
    environment the web container was created with."""
    env = dict(item.split("=", 1) for item in (uh.inspect(t.container()).get("Config") or {}).get("Env") or [])
    return {"tree": t.tree(), "web": t.image(), "sidecar": t.image("sidecar"), "page": uh.page_version(t.url),
            "APP_SECRET": env.get("APP_SECRET"), "IMAGE_TAG": env.get("IMAGE_TAG")}


@pytest.mark.parametrize("registered", [False, True], ids=["provisioned", "registered"])
def test_a_healthy_v2_tenant_rolls_back_to_its_v1_release_as_it_was(app, db, real_tenant, run_worker, registered):
    t, inst = real_tenant(registered=registered)
    v1 = _release(db, run_worker, inst, "v1")  # the tenant's v1, as a recorded release
    before = _state(t)
    assert before["web"] == f"{WEB}:v1" and before["page"] == "v1" and before["APP_SECRET"] == t.secret

    _release(db, run_worker, inst, "v2")
    v2_state = _state(t)
    assert v2_state["web"] == f"{WEB}:v2" and v2_state["page"] == "v2" and v2_state["tree"] != before["tree"]
    v2_container = t.container()

    inst = db.session.get(Instance, inst.id)
    preview = history.preview_rollback(inst, v1.id)
    assert preview.identical and (preview.preview.from_tag, preview.preview.tag) == ("v2", "v1")
    assert t.secret not in repr(preview)
    back = history.start_rollback(inst, v1.id, plan=preview.preview.plan_hash, actor="user:e2e")
    back = _run(db, run_worker, back)

    assert back.rollback_of == v1.id and back.to_tag == "v1"
    assert _state(t) == before, "files, .env, images, page or container environment differ from v1's"
    assert t.container() != v2_container, "web was not recreated"
    assert db.session.get(Instance, inst.id).image_tag == "v1"
    assert history.release_history(inst)[0].file_hashes == v1.file_hashes
    assert all(t.secret not in (s.output_tail or "") for s in back.steps)


def test_a_rollout_of_two_tenants_is_rolled_back_each_to_its_previous_tag(app, db, real_tenant, run_worker):
    tenants = [real_tenant() for _ in range(2)]
    before = {t.slug: _state(t) for t, _ in tenants}
    forward = rollouts.start_rollout("v2", instances=[t.slug for t, _ in tenants], canary=1, wave_size=1,
                                     actor="user:e2e")
    run_worker()
    db.session.expire_all()
    assert db.session.get(Rollout, forward.id).status == "succeeded"
    assert all(uh.page_version(t.url) == "v2" for t, _ in tenants)

    plan = rollbacks.plan_rollback(db.session.get(Rollout, forward.id))
    assert [(x.slug, x.from_tag, x.to_tag) for wave in plan.waves for x in wave] == [
        (t.slug, "v2", "v1") for t, _ in tenants]
    back = rollbacks.start_rollback(db.session.get(Rollout, forward.id), actor="user:e2e", expect=plan.digest)
    run_worker()
    db.session.expire_all()
    back = db.session.get(Rollout, back.id)
    assert back.status == "succeeded", back.error
    ups = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == back.id)).scalars().all()
    assert sorted((u.status, u.to_tag) for u in ups) == [("succeeded", "v1")] * 2
    for t, inst in tenants:
        assert _state(t) == before[t.slug], t.slug
        assert db.session.get(Instance, inst.id).image_tag == "v1"
