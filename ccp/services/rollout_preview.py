"""The fleet preview of a rollout: before a rollout starts, what it would do to each tenant and in which waves.

The waves come from the same planner the start uses (ccp.services.rollouts.plan_waves); each tenant in them is
previewed as a single "Upgrade to Release" is (ccp.services.upgrades.preview_release: render, ask the agent for the
diff and .env key names, env coverage). Nothing is written anywhere, except what every preview records: the agent's
version and capabilities and when it was last seen.

Tenants are previewed concurrently, each in a thread of a bounded pool with its own app context and database session
(the request's session is not shared across threads: a thread gets an instance id and loads it itself). The whole
preview is bounded in time: a tenant that has not answered within `deadline_s` is a row saying so (its thread ends on
its own within the agent timeouts, CCP_AGENT_*_TIMEOUT_S), and so is a tenant whose agent is unreachable, too old or
refuses - a row, never a failed preview.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from flask import current_app
from sqlalchemy import select

from ccp.extensions import db
from ccp.models import ACTIVE_STATUSES, Instance, Rollout, Upgrade
from ccp.services import upgrades as upgrade_svc
from ccp.services import windows
from ccp.services.rollouts import plan_waves
from ccp.services.upgrades import AgentTooOld, AgentUnavailable

log = logging.getLogger(__name__)

MAX_WORKERS = 8  # agents previewed at once; each preview is a few HTTP round trips and a render
DEADLINE_S = 20.0  # below gunicorn's default 30 s worker timeout, so a slow fleet still gets its page

# Per-tenant states: ready (previewed), or why not.
READY, UNAVAILABLE, TOO_OLD, FAILED, TIMED_OUT, DELETED = (
    "ready", "agent_unavailable", "agent_too_old", "preview_failed", "timed_out", "deleted")


@dataclass(frozen=True)
class TenantPreview:
    """One tenant a rollout would upgrade: what its release would change, or (`problem`) why it could not be
    previewed. Plain values: secret names only, never values."""

    instance_id: int
    slug: str
    from_tag: str | None
    to_tag: str
    state: str  # READY, UNAVAILABLE, TOO_OLD, FAILED, TIMED_OUT or DELETED
    problem: str | None = None
    modified: int = 0  # files
    created: int = 0
    secrets_changed: tuple[str, ...] = ()  # names of secret .env keys whose value would change
    missing_env: tuple[str, ...] = ()  # variables compose requires that the tenant would not have
    plan_hash: str | None = None
    # Outside its maintenance window now: when its wave starts, it waits for the window (not a blocker).
    window_note: str | None = None
    # An upgrade of this tenant is queued or running now (a tenant has one at a time): in the canary wave, which
    # starts at once, its upgrade could not start and the rollout would halt; in a later wave it has likely ended.
    busy: str | None = None
    busy_blocks: bool = False

    @property
    def files_changed(self) -> int:
        return self.modified + self.created

    @property
    def blocked(self) -> bool:
        """True when, as things stand, this tenant's upgrade would not start or would stop at its plan check (which
        refuses missing required variables) - and halt the rollout at its wave."""
        return self.state != READY or bool(self.missing_env) or self.busy_blocks


@dataclass(frozen=True)
class WavePreview:
    number: int  # from 1; wave 1 is the canary
    tenants: tuple[TenantPreview, ...]

    @property
    def canary(self) -> bool:
        return self.number == 1


@dataclass(frozen=True)
class RolloutPreview:
    """What a rollout of `tag` would do: its waves with a preview of each tenant, the tenants it skips (already on
    the tag), and `digest`, which binds a start to these tenants and waves (start_rollout's `expect`)."""

    tag: str
    canary: int
    wave_size: int
    waves: tuple[WavePreview, ...]
    skipped: tuple[str, ...]  # slugs
    digest: str
    elapsed_s: float
    running: tuple[int, str] | None = None  # (id, tag) of the rollout running now: this one must wait for it
    held: tuple[tuple[str, str], ...] = ()  # (slug, why) of tenants a hold keeps out of the rollout

    @property
    def waiting(self) -> tuple[TenantPreview, ...]:
        """Tenants outside their maintenance window now (their wave would wait for it)."""
        return tuple(t for t in self.tenants if t.window_note)

    @property
    def tenants(self) -> tuple[TenantPreview, ...]:
        """Every tenant it would upgrade, in wave order."""
        return tuple(t for wave in self.waves for t in wave.tenants)

    @property
    def blocked(self) -> tuple[TenantPreview, ...]:
        return tuple(t for t in self.tenants if t.blocked)

    @property
    def halts_at(self) -> int | None:
        """The first wave with a blocked tenant: where the rollout would halt if nothing changes (None: nowhere)."""
        return next((wave.number for wave in self.waves if any(t.blocked for t in wave.tenants)), None)

    @property
    def secret_changes(self) -> tuple[TenantPreview, ...]:
        """Tenants whose release would change a secret."""
        return tuple(t for t in self.tenants if t.secrets_changed)


def preview_rollout(tag, *, instances=None, canary=1, wave_size=5, deadline_s: float = DEADLINE_S,
                    workers: int = MAX_WORKERS) -> RolloutPreview:
    """Preview a rollout of `tag` over `instances` (slugs in wave order; None: every instance) with the same waves
    start_rollout would run. Reads only; returns within about `deadline_s` however many agents are slow or down.

    Raises RolloutInvalid (bad tag, sizes or slugs) exactly as start_rollout does; nothing else: a tenant that
    cannot be previewed is a row with its state and problem.
    """
    started = time.monotonic()
    plan = plan_waves(tag, instances=instances, canary=canary, wave_size=wave_size)
    # Plain data out of this session before any thread starts: threads load their own rows by id.
    waves = [[(inst.id, inst.slug, inst.image_tag) for inst in wave] for wave in plan.waves]
    skipped, digest = tuple(inst.slug for inst in plan.skipped), plan.digest
    held = tuple((inst.slug, why) for inst, why in plan.held)
    notes = {inst.id: _window_note(inst) for wave in plan.waves for inst in wave}
    todo = [tenant for wave in waves for tenant in wave]
    running = db.session.execute(select(Rollout.id, Rollout.tag).filter_by(status="running")).first()
    results = _preview_all(current_app._get_current_object(), todo, plan.tag, deadline_s, workers)
    return RolloutPreview(running=tuple(running) if running else None,
        tag=plan.tag, canary=canary, wave_size=wave_size, skipped=skipped, digest=digest, held=held,
        waves=tuple(WavePreview(number=n, tenants=tuple(
            replace(results[iid], window_note=notes[iid], busy_blocks=n == 1 and bool(results[iid].busy))
            for iid, _, _ in wave)) for n, wave in enumerate(waves, 1)),
        elapsed_s=round(time.monotonic() - started, 3))


def _window_note(instance: Instance) -> str | None:
    """'outside its window now (daily 02:00–04:00 Europe/Berlin; opens Tue 02:00 Europe/Berlin)', or None."""
    state = windows.window_state(instance)
    if state.open:
        return None
    return (f"outside its window now ({state.window.label}; opens "
            f"{windows.local_label(state.next_open, state.window.timezone)}): its wave waits for it")


def _preview_all(app, todo: list[tuple[int, str, str | None]], tag: str, deadline_s: float,
                 workers: int) -> dict[int, TenantPreview]:
    """Each tenant's preview by instance id; those not done by the deadline are TIMED_OUT rows."""
    if not todo:
        return {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))), thread_name_prefix="rollout-preview")
    try:
        futures = {pool.submit(_preview_one, app, iid, slug, from_tag, tag): (iid, slug, from_tag)
                   for iid, slug, from_tag in todo}
        done, _ = wait(futures, timeout=deadline_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # previews still running end within the agent timeouts
    results = {}
    for future, (iid, slug, from_tag) in futures.items():
        if future in done:
            results[iid] = future.result()
        else:
            results[iid] = TenantPreview(iid, slug, from_tag, tag, TIMED_OUT,
                                         f"no answer within {deadline_s:g} s (the agent or the host is slow)")
    return results


def _preview_one(app, instance_id: int, slug: str, from_tag: str | None, tag: str) -> TenantPreview:
    """One tenant's preview, in a pool thread: its own app context, so its own database session."""
    with app.app_context():
        instance = db.session.get(Instance, instance_id)
        if instance is None:
            return TenantPreview(instance_id, slug, from_tag, tag, DELETED, "the instance was deleted")
        try:
            preview = upgrade_svc.preview_release(instance, tag)
        except AgentUnavailable as exc:
            return TenantPreview(instance_id, slug, from_tag, tag, UNAVAILABLE, exc.message)
        except AgentTooOld as exc:
            return TenantPreview(instance_id, slug, from_tag, tag, TOO_OLD, exc.message)
        except upgrade_svc.UpgradeError as exc:  # RenderFailed and the like: the message says why
            return TenantPreview(instance_id, slug, from_tag, tag, FAILED, exc.message)
        except Exception as exc:  # noqa: BLE001 - one tenant's surprise must not take the fleet's preview down
            log.exception("rollout preview of %s for %s failed", slug, tag)
            return TenantPreview(instance_id, slug, from_tag, tag, FAILED,
                                 f"unexpected error ({type(exc).__name__}); see the server log")
        summary = preview.summary
        active = instance.upgrades.filter(Upgrade.status.in_(ACTIVE_STATUSES)).first()
        busy = (f"upgrade #{active.id} ({active.kind}) is {active.status} now: a tenant runs one upgrade at a time"
                if active else None)
        return TenantPreview(instance_id, slug, from_tag, tag, READY, modified=summary.get("modified", 0),
                             created=summary.get("created", 0), secrets_changed=tuple(preview.secrets_changed),
                             missing_env=tuple(preview.coverage.get("missing") or ()), plan_hash=preview.plan_hash,
                             busy=busy)
