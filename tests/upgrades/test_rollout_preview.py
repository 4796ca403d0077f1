"""The fleet preview of a rollout (ccp.services.rollout_preview) on real install dirs (dry-run runtime), on SQLite and
PostgreSQL: the waves the start would run, each tenant's changes, and every way a tenant can fail to be previewed as
a row of its own - bounded in time, concurrently, reading only."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ccp.extensions import get_queue
from ccp.models import AuditEvent, Rollout, Upgrade
from ccp.services import rollouts
from ccp.services.instances import update_instance
from ccp.services.rollout_preview import preview_rollout
from tests import tenants
from tests.factories import make_instance


def _count(db, model) -> int:
    return db.session.execute(select(func.count(model.id))).scalar()


def _by_slug(preview) -> dict:
    return {t.slug: t for t in preview.tenants}


def _join_preview_threads(timeout: float = 15) -> None:
    """Wait for pool threads still finishing a preview the deadline gave up on (before the database goes away)."""
    end = time.monotonic() + timeout
    for thread in [t for t in threading.enumerate() if t.name.startswith("rollout-preview")]:
        thread.join(max(0.0, end - time.monotonic()))


def test_waves_canary_skipped_and_changes_as_the_start_would_run_them(app, db, tenant_factory):
    for slug in ("pv-a", "pv-b", "pv-c"):
        tenant_factory(slug=slug)
    tenant_factory(slug="pv-reg", registered=True)
    tenant_factory(slug="pv-remote", driver="remote")  # previewed through a real agent over signed HTTP
    tenant_factory(slug="pv-done", tag="v2")
    audit_before = _count(db, AuditEvent)
    preview = preview_rollout("v2", canary=1, wave_size=2)

    assert preview.tag == "v2" and preview.skipped == ("pv-done",)
    assert [[t.slug for t in w.tenants] for w in preview.waves] == [["pv-a"], ["pv-b", "pv-c"], ["pv-reg",
                                                                                                  "pv-remote"]]
    assert [w.canary for w in preview.waves] == [True, False, False]
    assert preview.blocked == () and preview.halts_at is None and preview.secret_changes == ()
    rows = _by_slug(preview)
    assert all((t.state, t.from_tag, t.to_tag) == ("ready", "v1", "v2") for t in rows.values())
    assert all(len(t.plan_hash) == 64 and t.missing_env == () for t in rows.values())
    assert rows["pv-a"].modified >= 1 and rows["pv-a"].files_changed == rows["pv-a"].modified + rows["pv-a"].created
    assert rows["pv-reg"].files_changed == 0  # a registered tenant's tag reaches it through the .env patch alone
    assert preview.elapsed_s > 0

    # read-only: no rollout, upgrade, job or audit entry
    assert (_count(db, Rollout), _count(db, Upgrade), get_queue().count) == (0, 0, 0)
    assert _count(db, AuditEvent) == audit_before
    # the start follows the same plan: the preview's digest is accepted and the waves are the same
    rollout = rollouts.start_rollout("v2", canary=1, wave_size=2, actor="user:ann", expect=preview.digest)
    assert [w["instances"] for w in rollout.waves] == [[t.instance_id for t in w.tenants] for w in preview.waves]
    assert rollout.skipped == list(preview.skipped)


def test_an_unreachable_agent_is_a_row_and_says_where_the_rollout_would_halt(app, db, tenant_factory):
    tenant_factory(slug="un-a")
    make_instance(slug="un-dead")  # remote driver; nothing listens at http://127.0.0.1:9
    tenant_factory(slug="un-z")
    preview = preview_rollout("v2", instances=["un-a", "un-dead", "un-z"], canary=1, wave_size=1)
    rows = _by_slug(preview)
    assert rows["un-a"].state == rows["un-z"].state == "ready"
    dead = rows["un-dead"]
    assert dead.state == "agent_unavailable" and "127.0.0.1:9" in dead.problem and dead.blocked
    assert (dead.from_tag, dead.to_tag, dead.plan_hash, dead.files_changed) == ("v1", "v2", None, 0)
    assert [t.slug for t in preview.blocked] == ["un-dead"] and preview.halts_at == 2


def test_an_agent_too_old_is_a_row_naming_what_it_lacks(app, db, tenant_factory, monkeypatch):
    from ccp.drivers.local import LocalDriver

    tenant_factory(slug="old-a")
    health = LocalDriver.health
    monkeypatch.setattr(LocalDriver, "health", lambda self: {
        **health(self), "capabilities": [c for c in health(self)["capabilities"] if c != "env.keys"]})
    (row,) = preview_rollout("v2").tenants
    assert row.state == "agent_too_old" and "env.keys" in row.problem and row.blocked


def test_missing_env_and_changed_secrets_are_named_never_valued(app, db, tenant_factory):
    reg = tenant_factory(slug="env-reg", registered=True)
    env = Path(reg.install_dir) / ".env"
    lines = env.read_text().splitlines(keepends=True)
    dropped = next(line for line in lines if "=value-of-" in line)  # a variable compose requires
    env.write_text("".join(line for line in lines if line != dropped))
    missing = dropped.split("=", 1)[0]
    prov = tenant_factory(slug="env-prov")
    secrets = tenants.provisioned_secrets()
    update_instance(prov, {"secrets": {**secrets, "POSTGRES_PASSWORD": "rotated-" + tenants.CANARY}}, actor="test")

    preview = preview_rollout("v2", instances=["env-prov", "env-reg"], canary=1, wave_size=1)
    rows = _by_slug(preview)
    assert rows["env-reg"].state == "ready" and missing in rows["env-reg"].missing_env and rows["env-reg"].blocked
    assert preview.halts_at == 2
    assert rows["env-prov"].secrets_changed == ("POSTGRES_PASSWORD",) and not rows["env-prov"].blocked
    assert [t.slug for t in preview.secret_changes] == ["env-prov"]
    assert tenants.CANARY not in repr(preview)


def test_a_slow_agent_is_a_row_when_the_deadline_passes(app, db, tenant_factory):
    """An agent that accepts the connection and never answers: the preview returns at its deadline, not at the
    agent's read timeout, and the tenants that did answer are there."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshakes; nobody ever reads or answers
    app.config["CCP"].agent_read_timeout_s = 3.0  # the stuck thread gives up on its own soon after
    try:
        tenant_factory(slug="slow-a")
        make_instance(slug="slow-mute", agent_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        preview = preview_rollout("v2", deadline_s=0.8)
        took = time.monotonic() - started
        rows = _by_slug(preview)
        assert rows["slow-a"].state == "ready"
        assert rows["slow-mute"].state == "timed_out" and "0.8 s" in rows["slow-mute"].problem
        assert took < 2.5, f"the preview waited {took:.1f} s past its 0.8 s deadline"
    finally:
        _join_preview_threads()
        silent.close()


def test_tenants_are_previewed_concurrently_in_a_bounded_pool(app, db, tenant_factory, monkeypatch):
    from ccp.drivers.local import LocalDriver

    for slug in ("par-a", "par-b", "par-c", "par-d"):
        tenant_factory(slug=slug)
    health = LocalDriver.health
    running, peak, lock = [0], [0], threading.Lock()

    def slow_health(self):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.4)
        with lock:
            running[0] -= 1
        return health(self)

    monkeypatch.setattr(LocalDriver, "health", slow_health)
    preview = preview_rollout("v2", workers=2)
    assert all(t.state == "ready" for t in preview.tenants)
    assert peak[0] == 2, f"{peak[0]} previews ran at once with a pool of 2"
    preview = preview_rollout("v2", workers=4)
    assert peak[0] == 4 and preview.elapsed_s < 4 * 0.4, "four slow agents were asked one after the other"


@pytest.mark.parametrize("kwargs, field", [
    (dict(tag="bad tag!"), "tag"), (dict(tag=None), "tag"), (dict(tag="v2", canary=0), "canary"),
    (dict(tag="v2", wave_size="5"), "waveSize"), (dict(tag="v2", instances=["ghost"]), "instances"),
    (dict(tag="v2", instances=["bad-a", "bad-a"]), "instances"),
])
def test_bad_input_is_refused_like_a_start_and_asks_no_agent(app, db, tenant_factory, monkeypatch, kwargs, field):
    from ccp.drivers.local import LocalDriver

    tenant_factory(slug="bad-a")
    monkeypatch.setattr(LocalDriver, "health", lambda self: pytest.fail("an agent was asked"))
    kwargs = dict(kwargs)
    with pytest.raises(rollouts.RolloutInvalid) as refused:
        preview_rollout(kwargs.pop("tag"), **kwargs)
    assert field in refused.value.details


def test_nothing_to_do_when_every_tenant_is_on_the_tag(app, db, tenant_factory):
    tenant_factory(slug="on-a", tag="v2")
    preview = preview_rollout("v2")
    assert preview.waves == () and preview.tenants == () and preview.skipped == ("on-a",)
    assert preview.halts_at is None


def test_a_tenant_with_an_upgrade_running_is_flagged_and_blocks_only_the_canary(app, db, tenant_factory):
    from ccp.services import upgrades

    first, later = tenant_factory(slug="busy-a"), tenant_factory(slug="busy-b")
    tenant_factory(slug="busy-c")
    running = [upgrades.start_quick(inst, actor="t") for inst in (first, later)]  # queued: not run by any worker
    preview = preview_rollout("v2", instances=["busy-a", "busy-b", "busy-c"], canary=1, wave_size=2)
    rows = _by_slug(preview)
    assert rows["busy-a"].busy == f"upgrade #{running[0].id} (quick) is queued now: a tenant runs one upgrade at a time"
    assert rows["busy-a"].blocked and preview.halts_at == 1  # the canary wave starts at once
    assert rows["busy-b"].busy and not rows["busy-b"].blocked  # a later wave: it will likely have ended
    assert rows["busy-c"].busy is None and not rows["busy-c"].blocked
    assert rows["busy-a"].state == "ready" and rows["busy-a"].plan_hash  # still previewed
