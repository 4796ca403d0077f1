"""Rolling a rollout back: every tenant it changed goes back to the tag it ran before, in waves.

A finished rollout (succeeded, halted or cancelled) of kind "release" is rolled back by a new Rollout of kind
"rollback" (`rollback_of` names it) whose waves carry each tenant's own target: the `from_tag` of its upgrade in
that rollout, the digest recorded with the release that put that tag there, and that release's upgrade as
`rollback_of` (ccp.services.rollouts._start_wave reads wave["targets"]). From there it is an ordinary rollout: each
tenant gets a plan-bound Upgrade to Release with its automatic rollback, a wave that does not fully succeed halts
it, and only one rollout runs at a time.

Tenants the rollout did not change are skipped, each with the reason: its upgrade failed or was rolled back
automatically (it is back already), it never started, the tenant was deleted, it is held (ccp.services.windows), or
it has moved on since (it runs another tag now: roll it back from its History tab instead). A tenant held later, or
outside its maintenance window when its wave starts, is treated as in any rollout (left out, or waited for).
Which tenants go in which wave is decided once, by `plan_rollback`, which the preview and the start share; a start
can be bound to what a preview showed (`expect`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ccp.extensions import db
from ccp.models import Instance, Rollout, Upgrade, utcnow
from ccp.services import windows
from ccp.services.audit import record
from ccp.services.errors import ServiceError
from ccp.services.rollout_queue import advance_later
from ccp.services.rollouts import FINAL, MAX_WAVE_SIZE, RolloutConflict, RolloutInvalid, RolloutStale
from ccp.services.upgrades import UpgradeError

TAG_MAX = 128  # rollouts.tag


class RollbackNotPossible(ServiceError):
    """This rollout cannot be rolled back (still running, a rollback itself, or nothing to roll back)."""

    status, code = 409, "rollback_not_possible"


@dataclass(frozen=True)
class TenantTarget:
    """One tenant a rollout rollback would take back: from the tag its upgrade put there to the one before."""

    instance_id: int
    slug: str
    from_tag: str | None  # what it runs now (the rollout's tag)
    to_tag: str  # the tag it ran before the rollout
    upgrade_id: int  # its upgrade in the rolled-back rollout
    release_id: int | None  # the earlier release that put `to_tag` there (None: not recorded)
    image_digest: str | None  # the digest recorded with that release

    def as_target(self) -> dict:
        """The wave's per-tenant target (ccp.services.rollouts._start_wave)."""
        return {"tag": self.to_tag, "digest": self.image_digest, "upgrade_id": self.release_id}


@dataclass(frozen=True)
class SkippedTenant:
    slug: str
    reason: str


@dataclass(frozen=True)
class RollbackPlan:
    """What rolling back rollout `rollout_id` would do: the tenants in waves (wave 1 is the canary), the tenants it
    skips with their reasons, and the rollout running now (this one must wait for it)."""

    rollout_id: int
    rollout_tag: str
    canary: int
    wave_size: int
    waves: tuple[tuple[TenantTarget, ...], ...]
    skipped: tuple[SkippedTenant, ...]
    running: tuple[int, str] | None = None

    @property
    def tenants(self) -> tuple[TenantTarget, ...]:
        return tuple(t for wave in self.waves for t in wave)

    @property
    def tag_label(self) -> str:
        """The tags the tenants go back to, for the rollout's `tag`: 'v1', or 'v1, v1.1' (cut to fit)."""
        tags = sorted({t.to_tag for t in self.tenants})
        label = ", ".join(tags)
        return label if len(label) <= TAG_MAX else label[:TAG_MAX - 1] + "…"

    @property
    def digest(self) -> str:
        """SHA-256 over the waves (tenant, target tag and release) and the skipped slugs: what a start is bound to."""
        canonical = {"rollout": self.rollout_id,
                     "waves": [[[t.instance_id, t.to_tag, t.release_id] for t in wave] for wave in self.waves],
                     "skipped": [s.slug for s in self.skipped]}
        return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def plan_rollback(rollout: Rollout, *, canary=1, wave_size=5) -> RollbackPlan:
    """Which tenants rolling `rollout` back would take back, to which tag, in which waves (the rollout's own wave
    order). Reads only.

    Raises RolloutInvalid (sizes), RollbackNotPossible (the rollout is running, or is a rollback itself)."""
    canary, wave_size = _sizes(canary, wave_size)
    if rollout.status not in FINAL:
        raise RollbackNotPossible(f"rollout #{rollout.id} is still {rollout.status}: cancel it or let it end first",
                                  {"status": rollout.status})
    if (rollout.kind or "release") != "release":
        raise RollbackNotPossible(f"rollout #{rollout.id} is a rollback itself: roll tenants forward with a new "
                                  "rollout of the tag instead", {"kind": rollout.kind})
    upgrades = {u.instance_id: u for u in db.session.execute(
        select(Upgrade).where(Upgrade.rollout_id == rollout.id).order_by(Upgrade.id)).scalars()}
    order = [iid for wave in rollout.waves or () for iid in wave["instances"]]
    found = {i.id: i for i in db.session.execute(select(Instance).where(Instance.id.in_(order))).scalars()} \
        if order else {}
    todo, skipped = [], []
    for iid in order:
        inst, upgrade = found.get(iid), upgrades.get(iid)
        reason = _skip_reason(inst, upgrade)
        if reason:
            skipped.append(SkippedTenant(inst.slug if inst else f"#{iid} (deleted)", reason))
            continue
        earlier = _release_before(upgrade)
        todo.append(TenantTarget(instance_id=iid, slug=inst.slug, from_tag=inst.image_tag, to_tag=upgrade.from_tag,
                                 upgrade_id=upgrade.id, release_id=earlier.id if earlier else None,
                                 image_digest=earlier.image_digest if earlier else None))
    first, rest = todo[:canary], todo[canary:]
    waves = [first] + [rest[i:i + wave_size] for i in range(0, len(rest), wave_size)] if todo else []
    running = db.session.execute(select(Rollout.id, Rollout.tag).filter_by(status="running")).first()
    return RollbackPlan(rollout_id=rollout.id, rollout_tag=rollout.tag, canary=canary, wave_size=wave_size,
                        waves=tuple(tuple(w) for w in waves), skipped=tuple(skipped),
                        running=tuple(running) if running else None)


def start_rollback(rollout: Rollout, *, canary=1, wave_size=5, actor: str, source: str = "api",
                   expect: str | None = None) -> Rollout:
    """Start a Rollout(kind="rollback") taking `rollout`'s tenants back to their previous tags, in waves.

    `expect` (a preview's `digest`) binds the start to what was previewed. Raises RolloutInvalid (sizes),
    RollbackNotPossible (running, a rollback itself, or no tenant to take back), RolloutStale (the plan changed
    since the preview), RolloutConflict (another rollout is running) - nothing recorded then - or UpgradeError
    (Redis unavailable: the rollback is recorded halted)."""
    plan = plan_rollback(rollout, canary=canary, wave_size=wave_size)
    if expect is not None and expect != plan.digest:
        raise RolloutStale("the tenants to roll back changed since the preview (one was upgraded, rolled back or "
                           "deleted): preview again and confirm what it shows", {"digest": plan.digest})
    if not plan.waves:
        raise RollbackNotPossible(f"rollout #{rollout.id} left no tenant to roll back: "
                                  + "; ".join(f"{s.slug} {s.reason}" for s in plan.skipped[:5])[:500],
                                  {"skipped": len(plan.skipped)})
    back = Rollout(tag=plan.tag_label, kind="rollback", rollback_of=rollout.id, status="running", source=source,
                   actor=actor, created_at=utcnow(), image_digest=None,
                   waves=[{"instances": [t.instance_id for t in wave], "status": "pending", "errors": {},
                           "targets": {str(t.instance_id): t.as_target() for t in wave}} for wave in plan.waves],
                   skipped=[s.slug for s in plan.skipped])
    db.session.add(back)
    try:
        db.session.commit()  # the partial unique index refuses a second running rollout here
    except IntegrityError:
        db.session.rollback()
        running = db.session.execute(select(Rollout).filter_by(status="running")).scalars().first()
        raise RolloutConflict("another rollout is running" + (f" (#{running.id}, tag {running.tag})" if running
                              else "") + ": only one rollout runs at a time; start the rollback when it has ended",
                              {"running_rollout_id": running.id if running else None}) from None
    record(actor, "rollout.rollback", result="running",
           detail={"rollout_id": back.id, "rollback_of": rollout.id, "waves": [len(w) for w in plan.waves],
                   "skipped": len(plan.skipped), "source": source})
    try:
        advance_later(back.id)
    except Exception as exc:  # noqa: BLE001 - Redis down: do not leave a running rollout nobody advances
        back.status, back.finished_at = "halted", utcnow()
        back.error = "could not queue the rollout: Redis is unavailable"
        db.session.commit()
        raise UpgradeError("cannot queue the rollback: Redis is unavailable", {"reason": type(exc).__name__}) from None
    return back


def rolled_back_by(rollout: Rollout) -> list[int]:
    """Ids of the rollback rollouts started for `rollout`, newest first."""
    return list(db.session.execute(select(Rollout.id).where(Rollout.rollback_of == rollout.id)
                                   .order_by(Rollout.id.desc())).scalars())


def _skip_reason(inst: Instance | None, upgrade: Upgrade | None) -> str | None:
    """Why a tenant of the rollout is not taken back (None: it is)."""
    if inst is None:
        return "was deleted"
    if upgrade is None:
        return "was not upgraded by this rollout"
    if upgrade.status != "succeeded":
        already = {"rolled_back": f"is back on {upgrade.from_tag or 'its previous tag'} already (its upgrade "
                                  f"#{upgrade.id} rolled back by itself)",
                   "rollback_failed": f"needs an operator: its upgrade #{upgrade.id} could not roll back",
                   "queued": f"its upgrade #{upgrade.id} is still queued",
                   "running": f"its upgrade #{upgrade.id} is still running",
                   "interrupted": f"needs an operator: its upgrade #{upgrade.id} was interrupted (state unknown; "
                                  "preview it from its page)"}
        return already.get(upgrade.status, f"was not changed: its upgrade #{upgrade.id} "
                                           f"{upgrade.status.replace('_', ' ')} before the new release was up")
    if not upgrade.from_tag:
        return "has no earlier tag recorded"
    if upgrade.from_tag == upgrade.to_tag:
        return f"was on {upgrade.to_tag} before the rollout as well"
    if inst.image_tag != upgrade.to_tag:
        return (f"has moved on since: it runs {inst.image_tag or 'no tag'} now, not {upgrade.to_tag} (roll it back "
                "from its History tab)")
    hold = windows.active_hold(inst)
    if hold is not None:  # a hold pins the tenant to its tag, a rollback's tag too (release it to include it)
        return f"is {hold.sentence}"
    return None


def _release_before(upgrade: Upgrade) -> Upgrade | None:
    """The tenant's last succeeded release before `upgrade`, when it put `upgrade.from_tag` there."""
    earlier = db.session.execute(
        select(Upgrade).where(Upgrade.instance_id == upgrade.instance_id, Upgrade.kind == "release",
                              Upgrade.status == "succeeded", Upgrade.id < upgrade.id)
        .order_by(Upgrade.id.desc()).limit(1)).scalar_one_or_none()
    return earlier if earlier is not None and earlier.to_tag == upgrade.from_tag else None


def _sizes(canary, wave_size) -> tuple[int, int]:
    errors = {}
    for name, value in (("canary", canary), ("waveSize", wave_size)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WAVE_SIZE:
            errors[name] = f"must be a whole number from 1 to {MAX_WAVE_SIZE}"
    if errors:
        raise RolloutInvalid("invalid field(s): " + ", ".join(sorted(errors)), errors)
    return canary, wave_size
