"""Rollouts: one image tag across the fleet, in waves - a canary wave first, then waves of a fixed size.

A rollout never runs a tenant's upgrade itself: for each tenant of a wave it plans the release (as a preview does)
and starts an ordinary "Upgrade to Release" bound to that plan's hash, so each tenant gets the same
checks, lock, recorded steps and automatic rollback as a single upgrade. The next wave starts only when every
upgrade of the current one *succeeded*; anything else (failed, rolled back, interrupted, cancelled, or a tenant whose
upgrade could not even start, e.g. its agent is down) halts the rollout with the reason, and the remaining waves are
never touched. Starting a rollout for the same tag again continues where it stopped: tenants already on the tag are
skipped. Which tenants go in which wave is decided once, by `plan_waves`: the start and the fleet preview
(ccp.services.rollout_preview) both call it, and a start can be bound to what a preview showed (`expect`).

Progress is event-driven, so no worker ever sits waiting: `advance` (an RQ job) starts a wave and returns; every
upgrade of the rollout that ends enqueues `advance` again, which moves on once the wave is complete. A Redis lock
per rollout serialises concurrent `advance` calls, the database allows one running rollout at a time, and the
worker's housekeeping re-enqueues `advance` for a running rollout that has had no active upgrade for a minute (its
last `advance` was lost).

Statuses: running (active); succeeded, halted, cancelled (final).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ccp import rules
from ccp.extensions import db, get_redis
from ccp.models import ACTIVE_STATUSES, Instance, Rollout, Upgrade, as_utc, iso_utc, utcnow
from ccp.rules import check_tag
from ccp.services import upgrades as upgrade_svc
from ccp.services.audit import record
from ccp.services.rollout_queue import LOCK_S, advance_later
from ccp.services.errors import ServiceError
from ccp.services.upgrades import UpgradeError

log = logging.getLogger(__name__)

FINAL = ("succeeded", "halted", "cancelled")
MAX_WAVE_SIZE = 1000
STALL_S = 60  # a running rollout without an active upgrade for this long is advanced by housekeeping


class RolloutInvalid(ServiceError):
    status, code = 422, "validation_failed"


class RolloutConflict(ServiceError):
    status, code = 409, "rollout_active"


class RolloutNotCancellable(ServiceError):
    status, code = 409, "not_cancellable"


class RolloutStale(ServiceError):
    status, code = 409, "preview_stale"


def start_rollout(tag, *, instances=None, canary=1, wave_size=5, actor: str, source: str = "api",
                  expect: str | None = None, image_digest: str | None = None) -> Rollout:
    """Plan the waves for `tag` over `instances` (slugs; default: every instance) and start the first one.
    `image_digest` (sha256:..., from a receiver) is what the tag resolved to: kept on the rollout and its upgrades.

    Tenants already on `tag` are skipped. `expect` (a preview's `digest`) binds the start to what was previewed:
    when the tenants or waves differ now, RolloutStale is raised and nothing is recorded. Raises RolloutInvalid (bad
    tag, sizes or unknown slugs; nothing recorded), RolloutConflict (another rollout is running) or UpgradeError
    (Redis unavailable: the rollout is recorded halted).
    """
    plan = plan_waves(tag, instances=instances, canary=canary, wave_size=wave_size)
    if expect is not None and expect != plan.digest:
        raise RolloutStale("the tenants or waves changed since the preview (a tenant was added, removed or is on "
                           "another tag now): preview again and confirm what it shows", {"digest": plan.digest})
    tag = plan.tag
    waves = [[inst.id for inst in wave] for wave in plan.waves]
    now = utcnow()  # one clock reading: a rollout with nothing to do finishes when it is created, not before
    rollout = Rollout(tag=tag, status="running" if waves else "succeeded", source=source, actor=actor,
                      waves=[{"instances": ids, "status": "pending", "errors": {}} for ids in waves],
                      skipped=[inst.slug for inst in plan.skipped],
                      created_at=now, finished_at=None if waves else now, image_digest=image_digest)
    db.session.add(rollout)
    try:
        db.session.commit()  # the partial unique index refuses a second running rollout here
    except IntegrityError:
        db.session.rollback()
        running = db.session.execute(select(Rollout).filter_by(status="running")).scalars().first()
        raise RolloutConflict("another rollout is running" + (f" (#{running.id}, tag {running.tag})" if running
                              else ""), {"running_rollout_id": running.id if running else None}) from None
    record(actor, "rollout.start", result=rollout.status,
           detail={"rollout_id": rollout.id, "tag": tag, "waves": [len(w) for w in waves], "source": source,
                   "skipped": len(rollout.skipped)})
    if waves:
        try:
            advance_later(rollout.id)
        except Exception as exc:  # noqa: BLE001 - Redis down: do not leave a running rollout nobody advances
            _finish(rollout, "halted", "could not queue the rollout: Redis is unavailable")
            raise UpgradeError("cannot queue the rollout: Redis is unavailable",
                               {"reason": type(exc).__name__}) from None
    return rollout


@dataclass(frozen=True)
class WavePlan:
    """Who a rollout of `tag` would touch and when: its waves in order (wave 1 is the canary) and the tenants it
    skips because they are already on the tag. Made by `plan_waves`, the one rule the preview and the start share."""

    tag: str
    waves: tuple[tuple[Instance, ...], ...]
    skipped: tuple[Instance, ...]

    @property
    def digest(self) -> str:
        """SHA-256 over the tag, each wave's instance ids and the skipped ids: what a confirmation is bound to."""
        canonical = {"tag": self.tag, "waves": [[inst.id for inst in wave] for wave in self.waves],
                     "skipped": [inst.id for inst in self.skipped]}
        return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def plan_waves(tag, *, instances=None, canary=1, wave_size=5) -> WavePlan:
    """The waves a rollout of `tag` over `instances` (slugs in wave order; None: every instance, by slug) would run:
    the first `canary` tenants not on the tag, then groups of `wave_size`. Reads only.

    Raises RolloutInvalid (bad tag, sizes, or slugs: malformed, repeated or unknown) naming each field.
    """
    tag, canary, wave_size = _checked(tag, canary, wave_size)
    targets = _targets(instances)
    todo = [inst for inst in targets if inst.image_tag != tag]
    first, rest = todo[:canary], todo[canary:]
    waves = [first] + [rest[i:i + wave_size] for i in range(0, len(rest), wave_size)] if todo else []
    return WavePlan(tag=tag, waves=tuple(tuple(wave) for wave in waves),
                    skipped=tuple(inst for inst in targets if inst.image_tag == tag))


def cancel_rollout(rollout: Rollout, *, actor: str) -> Rollout:
    """Stop a running rollout: no further wave starts; upgrades already started finish normally.

    Raises RolloutNotCancellable when the rollout has already ended."""
    if rollout.status in FINAL:
        raise RolloutNotCancellable(f"rollout {rollout.id} is already {rollout.status}")
    rollout.cancel_requested = True
    db.session.commit()
    record(actor, "rollout.cancel", detail={"rollout_id": rollout.id})
    try:
        advance_later(rollout.id)  # ends it now if no upgrade is in flight
    except Exception:  # noqa: BLE001 - Redis down: the request is saved; housekeeping advances it later
        log.warning("could not queue rollout %s after its cancel; housekeeping will", rollout.id)
    return rollout


def advance(rollout_id: int) -> str:
    """Move a running rollout on as far as it can go now; returns its status. (The RQ job `advance_rollout`.)"""
    # Named under this install's queue (CCP_QUEUE), like its other Redis keys: two CCPs sharing a Redis database have
    # rollouts with the same ids and must not wait on each other's locks.
    lock = f"ccp:{current_app.config['CCP'].queue_name}:rollout:{rollout_id}"
    with get_redis().lock(lock, timeout=LOCK_S, blocking_timeout=LOCK_S):
        db.session.expire_all()
        rollout = db.session.get(Rollout, rollout_id)
        if rollout is None:
            return "missing"
        while rollout.status == "running":
            wave_no, wave = _current_wave(rollout)
            if wave is None:
                _finish(rollout, "succeeded")
            elif rollout.cancel_requested and wave["status"] == "pending":
                _finish(rollout, "cancelled", f"cancelled before wave {wave_no + 1}")
            elif wave["status"] == "pending":
                _start_wave(rollout, wave_no, wave)
            else:
                outcome = _wave_outcome(rollout, wave)
                if outcome is None:  # upgrades still queued/running: their ends will call us again
                    break
                wave = {**wave, "status": "succeeded" if not outcome else "failed", "finished_at": iso_utc(utcnow())}
                _save_wave(rollout, wave_no, wave)
                if outcome:
                    _finish(rollout, "halted", f"wave {wave_no + 1} did not succeed: " + "; ".join(outcome))
        return rollout.status


def nudge_stalled() -> list[int]:
    """Queue `advance` for running rollouts that have had no active upgrade for STALL_S (their event was lost)."""
    nudged = []
    cutoff = utcnow() - timedelta(seconds=STALL_S)
    for rollout in db.session.execute(select(Rollout).filter_by(status="running")).scalars():
        active, last_end = db.session.execute(
            select(func.count(Upgrade.id).filter(Upgrade.status.in_(ACTIVE_STATUSES)), func.max(Upgrade.finished_at))
            .where(Upgrade.rollout_id == rollout.id)).one()
        if active == 0 and as_utc(last_end or rollout.created_at) < cutoff:
            advance_later(rollout.id)
            nudged.append(rollout.id)
    return nudged


def _checked(tag, canary, wave_size) -> tuple[str, int, int]:
    errors = {}
    try:
        tag = check_tag(tag) if isinstance(tag, str) else None
    except ValueError as exc:
        errors["tag"] = str(exc)
    if tag is None and "tag" not in errors:
        errors["tag"] = "required: the image tag to roll out"
    for name, value in (("canary", canary), ("waveSize", wave_size)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WAVE_SIZE:
            errors[name] = f"must be a whole number from 1 to {MAX_WAVE_SIZE}"
    if errors:
        raise RolloutInvalid("invalid field(s): " + ", ".join(sorted(errors)), errors)
    return tag, canary, wave_size


def _targets(slugs) -> list[Instance]:
    if slugs is None:
        return list(db.session.execute(select(Instance).order_by(Instance.slug)).scalars())
    if not isinstance(slugs, list) or not slugs or not all(isinstance(s, str) for s in slugs):
        raise RolloutInvalid("instances must be a non-empty list of slugs", {"instances": "list of slugs"})
    malformed = sorted({s[:64] for s in slugs if not rules.SLUG.fullmatch(s)})
    if malformed:  # not a slug at all: no instance can have it (and NUL or lone surrogates never reach the database)
        raise RolloutInvalid("instances must be slugs (a-z 0-9 -)", {"instances": "not a slug: "
                             + ", ".join(ascii(s) for s in malformed[:5])})
    repeated = sorted(slug for slug, n in Counter(slugs).items() if n > 1)
    if repeated:
        raise RolloutInvalid(f"instance(s) listed more than once: {', '.join(repeated)[:300]}",
                             {"instances": f"listed more than once: {', '.join(repeated)[:300]}"})
    found = {i.slug: i for i in db.session.execute(select(Instance).where(Instance.slug.in_(slugs))).scalars()}
    unknown = sorted(set(slugs) - set(found))
    if unknown:
        raise RolloutInvalid(f"unknown instance(s): {', '.join(unknown)}", {"instances": unknown})
    return [found[s] for s in slugs]  # the caller's order


def _current_wave(rollout: Rollout) -> tuple[int, dict | None]:
    for number, wave in enumerate(rollout.waves):
        if wave["status"] in ("pending", "running"):
            return number, wave
    return len(rollout.waves), None


def _save_wave(rollout: Rollout, number: int, wave: dict) -> None:
    waves = list(rollout.waves)
    waves[number] = wave
    rollout.waves = waves  # a new list: JSON columns are saved when the attribute is assigned
    db.session.commit()


def _start_wave(rollout: Rollout, number: int, wave: dict) -> None:
    """Plan and start each tenant's upgrade; a tenant that cannot start is recorded with the reason."""
    errors = {}
    actor = f"rollout:{rollout.id}"
    for iid in wave["instances"]:
        inst = db.session.get(Instance, iid)
        if inst is None:
            errors[f"#{iid}"] = "the instance was deleted"
            continue
        # A rollback rollout names each tenant's own target: {"<instance id>": {"tag", "digest", "upgrade_id"}}.
        target = (wave.get("targets") or {}).get(str(iid)) or {}
        tag = target.get("tag") or rollout.tag
        try:
            digest = target.get("digest", rollout.image_digest)
            plan = upgrade_svc.plan_release(inst, tag, digest)
            upgrade_svc.start_release(inst, tag, plan=plan.plan_hash, actor=actor, rollout_id=rollout.id,
                                      plan_checked=True, image_digest=digest,
                                      rollback_of=target.get("upgrade_id"))
        except UpgradeError as exc:
            db.session.rollback()
            errors[inst.slug] = exc.message
    _save_wave(rollout, number, {**wave, "status": "running", "started_at": iso_utc(utcnow()), "errors": errors})
    record(actor, "rollout.wave.start", detail={"rollout_id": rollout.id, "wave": number + 1,
                                                "tenants": len(wave["instances"]), "not_started": len(errors)})


def _wave_outcome(rollout: Rollout, wave: dict) -> list[str] | None:
    """None while an upgrade of the wave is active; else the reasons it failed ([] when every tenant succeeded)."""
    upgrades = list(db.session.execute(select(Upgrade).where(
        Upgrade.rollout_id == rollout.id, Upgrade.instance_id.in_(wave["instances"]))).scalars())
    if any(u.status in ACTIVE_STATUSES for u in upgrades):
        return None
    reasons = [f"{slug} could not start ({why})" for slug, why in sorted(wave["errors"].items())]
    reasons += [f"{u.instance.slug} {u.status.replace('_', ' ')}" + (f" ({u.error})" if u.error else "")
                for u in upgrades if u.status != "succeeded"]
    return reasons


def _finish(rollout: Rollout, status: str, error: str | None = None) -> None:
    rollout.status, rollout.finished_at = status, utcnow()
    if error:
        rollout.error = error[:4000]
    db.session.commit()
    record(rollout.actor, "rollout.finish", result=status, detail={"rollout_id": rollout.id, "tag": rollout.tag})
