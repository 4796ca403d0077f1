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

Maintenance windows and holds (ccp.services.windows): a tenant held when the rollout is planned is skipped, with the
hold's sentence in `skipped` ({"slug", "reason"} beside the slugs already on the tag). When a wave starts, a tenant
outside its window is not started: the wave records it in `waiting` ({slug: ISO time its window opens}) and stays
running; housekeeping advances the rollout once a waiting tenant's window is open, and the wave is complete only when
every tenant ran. A tenant held after the rollout was planned is left out when its wave starts (`held`: {slug:
sentence}), without failing the wave. A cancel while tenants wait ends the rollout without starting them.

Statuses: running (active); succeeded, halted, cancelled (final).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
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
from ccp.services import windows
from ccp.services.audit import record
from ccp.services.rollout_queue import LOCK_S, LOCK_TTL_S, advance_later
from ccp.services.errors import ServiceError
from ccp.services.upgrades import UpgradeError

log = logging.getLogger(__name__)

FINAL = ("succeeded", "halted", "cancelled")
MAX_WAVE_SIZE = 1000
# The Redis lock the running `advance` holds (renewed per tenant a wave start plans; see LOCK_TTL_S).
_lock: contextvars.ContextVar = contextvars.ContextVar("rollout_lock")
STALL_S = 60  # a running rollout without an active upgrade for this long is advanced by housekeeping
PLAN_THREADS = 8  # a wave's plans made at once (each is mostly waiting on its agent)
FIRST_ALONE_S = 0.25  # the head start of a wave's first plan before the others are made beside it


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
                      skipped=[inst.slug for inst in plan.skipped]
                      + [{"slug": inst.slug, "reason": why} for inst, why in plan.held],
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
                   "skipped": len(rollout.skipped), "held": len(plan.held)})
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
    held: tuple[tuple[Instance, str], ...] = ()  # tenants not on the tag that a hold keeps out, with its sentence

    @property
    def digest(self) -> str:
        """SHA-256 over the tag, each wave's instance ids and the skipped ids: what a confirmation is bound to."""
        canonical = {"tag": self.tag, "waves": [[inst.id for inst in wave] for wave in self.waves],
                     "skipped": [inst.id for inst in self.skipped]}
        if self.held:
            canonical["held"] = [inst.id for inst, _ in self.held]
        return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def plan_waves(tag, *, instances=None, canary=1, wave_size=5) -> WavePlan:
    """The waves a rollout of `tag` over `instances` (slugs in wave order; None: every instance, by slug) would run:
    the first `canary` tenants not on the tag, then groups of `wave_size`. Reads only. Tenants not on the tag
    that are held now are left out (`held`, with the hold's sentence).

    Raises RolloutInvalid (bad tag, sizes, or slugs: malformed, repeated or unknown) naming each field.
    """
    tag, canary, wave_size = _checked(tag, canary, wave_size)
    targets = _targets(instances)
    now = utcnow()
    held = tuple((inst, hold.sentence) for inst in targets if inst.image_tag != tag
                 for hold in [windows.active_hold(inst, now)] if hold is not None)
    held_ids = {inst.id for inst, _ in held}
    todo = [inst for inst in targets if inst.image_tag != tag and inst.id not in held_ids]
    first, rest = todo[:canary], todo[canary:]
    waves = [first] + [rest[i:i + wave_size] for i in range(0, len(rest), wave_size)] if todo else []
    return WavePlan(tag=tag, waves=tuple(tuple(wave) for wave in waves),
                    skipped=tuple(inst for inst in targets if inst.image_tag == tag), held=held)


def skipped_of(rollout: Rollout) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """A rollout's skipped tenants: the slugs already on the tag, and (slug, why) of those a hold kept out."""
    on_tag = tuple(s for s in rollout.skipped or () if isinstance(s, str))
    held = tuple((s["slug"], s["reason"]) for s in rollout.skipped or () if isinstance(s, dict))
    return on_tag, held


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
    with get_redis().lock(lock, timeout=LOCK_TTL_S, blocking_timeout=LOCK_S) as held:
        token = _lock.set(held)
        try:
            return _advance_locked(rollout_id)
        finally:
            _lock.reset(token)


def _advance_locked(rollout_id: int) -> str:
    """`advance` while its lock is held."""
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
        elif wave["status"] == "pending" or (wave.get("starting") and not rollout.cancel_requested):
            _start_wave(rollout, wave_no, wave)  # `starting`: the advance that started it died part-way
        elif wave.get("waiting") and not rollout.cancel_requested and not _failing(rollout, wave) \
                and _start_waiting(rollout, wave_no, wave):
            continue  # some waiting tenants started (or could not): look at the wave again
        else:
            outcome = _wave_outcome(rollout, wave)
            if outcome is None:  # upgrades still queued/running: their ends will call us again
                break
            waiting = sorted(wave.get("waiting") or ())
            cut = sorted(wave.get("cancelled") or ()) or sorted(_unstarted(rollout, wave) if wave.get("starting")
                                                                 else ())
            if cut and not outcome:  # cancelled while the wave's upgrades were being queued: these never start
                _save_wave(rollout, wave_no, {**_settled(wave), "status": "cancelled", "waiting": {},
                                              "cancelled": cut, "not_started": waiting,
                                              "finished_at": iso_utc(utcnow())})
                _finish(rollout, "cancelled", f"cancelled in wave {wave_no + 1} before {', '.join(cut)} started"
                        + (f"; not started: {', '.join(waiting)} (waiting for a maintenance window)"
                           if waiting else ""))
                break
            if waiting and not outcome:  # cancelled while these waited for their windows: they never start
                _save_wave(rollout, wave_no, {**wave, "status": "cancelled", "waiting": {},
                                              "not_started": waiting, "finished_at": iso_utc(utcnow())})
                _finish(rollout, "cancelled", f"cancelled in wave {wave_no + 1} while {', '.join(waiting)} "
                        "waited for a maintenance window (not started)")
                break
            wave = {**_settled(wave), "status": "succeeded" if not outcome else "failed",
                    "finished_at": iso_utc(utcnow())}
            if waiting:
                wave["waiting"], wave["not_started"] = {}, waiting
            if cut:
                wave["cancelled"] = cut
            _save_wave(rollout, wave_no, wave)
            if outcome:
                unstarted = f"; not started: {', '.join(waiting)} (waiting for a maintenance window)" \
                    if waiting else ""
                unstarted += f"; not started: {', '.join(cut)} (the rollout was cancelled)" if cut else ""
                _finish(rollout, "halted", f"wave {wave_no + 1} did not succeed: " + "; ".join(outcome) + unstarted)
    return rollout.status


def nudge_stalled() -> list[int]:
    """Queue `advance` for running rollouts that have had no active upgrade for STALL_S (their event was lost), and
    for those with a tenant waiting for a maintenance window that is open now (or no longer there).

    A rollout whose tenants wait for windows still closed is left alone (advancing it would only find them waiting),
    unless its wave is failing: then its lost event is re-queued like any other, so it halts without them."""
    nudged = []
    now = utcnow()
    cutoff = now - timedelta(seconds=STALL_S)
    for rollout in db.session.execute(select(Rollout).filter_by(status="running")).scalars():
        _, wave = _current_wave(rollout)
        waiting = (wave or {}).get("waiting") or {}
        if waiting and not rollout.cancel_requested and _any_window_open(waiting, now):
            advance_later(rollout.id)
            nudged.append(rollout.id)
            continue
        active, last_end = db.session.execute(
            select(func.count(Upgrade.id).filter(Upgrade.status.in_(ACTIVE_STATUSES)), func.max(Upgrade.finished_at))
            .where(Upgrade.rollout_id == rollout.id)).one()
        if waiting and not rollout.cancel_requested and not _failing(rollout, wave):
            continue  # its tenants wait for windows still closed: advancing would only find them waiting
        if active == 0 and as_utc(last_end or rollout.created_at) < cutoff:
            advance_later(rollout.id)
            nudged.append(rollout.id)
    return nudged


def _any_window_open(waiting: dict[str, str], now) -> bool:
    """True when a waiting tenant may start now: its window is open (it may have been changed or removed since the
    wave recorded when it opens), it was held meanwhile (the wave leaves it out), or it was deleted."""
    found = {i.slug: i for i in db.session.execute(select(Instance).where(Instance.slug.in_(list(waiting)))).scalars()}
    return any(slug not in found or windows.active_hold(found[slug], now) is not None
               or windows.window_state(found[slug], now).open for slug in waiting)


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
    """Plan and start each tenant's upgrade; a tenant that cannot start is recorded with the reason, one outside its
    maintenance window waits for it (`waiting`), one held since the rollout was planned is left out (`held`).

    The wave is saved running (with `starting`) before the first plan, so its status is true while upgrades are
    being queued; the plans are made in parallel (PLAN_THREADS at a time: each is mostly agent round trips) and each
    upgrade is queued as soon as its plan is ready. A cancel is looked at before each start: the tenants not started
    yet are then recorded in `cancelled` and never start. An `advance` that finds a wave still `starting` (the one
    that started it died) starts the rest; tenants already started in this rollout are never started twice."""
    errors, waiting, held = dict(wave.get("errors") or {}), dict(wave.get("waiting") or {}), \
        dict(wave.get("held") or {})
    wave = {**wave, "status": "running", "started_at": wave.get("started_at") or iso_utc(utcnow()),
            "starting": True, "errors": errors, "waiting": waiting, "held": held}
    _save_wave(rollout, number, wave)
    now = utcnow()
    found = {inst.id: inst for inst in db.session.execute(
        select(Instance).where(Instance.id.in_(wave["instances"]))).scalars()}  # one query, not one per tenant
    started = _started_ids(rollout, wave["instances"])
    ready = []
    for iid in wave["instances"]:
        inst = found.get(iid)
        if inst is None:
            errors[f"#{iid}"] = "the instance was deleted"
        elif _may_start(inst, now, waiting, held, started):
            ready.append(inst)
    cancelled = _start_planned(rollout, wave, ready, errors)
    wave = {**_settled(wave), "errors": errors, "waiting": waiting, "held": held}
    if cancelled:
        wave["cancelled"] = cancelled
    _save_wave(rollout, number, wave)
    record(f"rollout:{rollout.id}", "rollout.wave.start",
           detail={"rollout_id": rollout.id, "wave": number + 1, "tenants": len(wave["instances"]),
                   "not_started": len(errors), "waiting": sorted(waiting), "held": sorted(held),
                   "cancelled": cancelled})


def _start_planned(rollout: Rollout, wave: dict, ready: list[Instance], errors: dict) -> list[str]:
    """Plan `ready`'s releases in parallel and start each as its plan is done; a refusal goes into `errors`. The first
    tenant's plan gets a head start (FIRST_ALONE_S at most), so the wave's first upgrade is queued after a plan that
    competes with no other: that is what the gap between two waves is made of. Returns the slugs left unstarted
    because the rollout was cancelled meanwhile."""
    if not ready:
        return []
    app = current_app._get_current_object()
    targets = {inst.id: _target(rollout, wave, inst) for inst in ready}
    by_id = {inst.id: inst for inst in ready}
    rollout_id, started = rollout.id, set()  # the id read once: each commit expires the rollout

    def plan(iid: int):  # in a pool thread: its own app context and database session
        with app.app_context():
            try:
                tag, digest, _ = targets[iid]
                return upgrade_svc.plan_release(db.session.get(Instance, iid), tag, digest).plan_hash
            except UpgradeError as exc:
                return exc
            finally:
                db.session.remove()

    def start(iid: int, result) -> bool:
        """Queue the upgrade planned as `result` (or record why not); False once the rollout was cancelled."""
        if _cancel_requested(rollout_id):
            return False
        held_lock = _lock.get(None)
        if held_lock is not None:
            held_lock.reacquire()  # keep the lock while this job is alive (each plan is bounded by timeouts)
        started.add(iid)
        inst, (tag, digest, rollback_of) = by_id[iid], targets[iid]
        if isinstance(result, UpgradeError):
            errors[inst.slug] = result.message
            return True
        try:
            upgrade_svc.start_release(inst, tag, plan=result, actor=f"rollout:{rollout_id}", rollout_id=rollout_id,
                                      plan_checked=True, image_digest=digest, rollback_of=rollback_of)
        except UpgradeError as exc:
            db.session.rollback()
            errors[inst.slug] = exc.message
        return True

    with ThreadPoolExecutor(max_workers=min(PLAN_THREADS, len(ready)), thread_name_prefix="rollout-plan") as pool:
        first = pool.submit(plan, ready[0].id)
        # the first plan alone, its upgrade queued at once (a slow agent holds the others back this long at most)
        if wait([first], timeout=FIRST_ALONE_S).done:
            futures = {} if start(ready[0].id, first.result()) else None
        else:
            futures = {first: ready[0].id}
        if futures is None:  # cancelled before even the first started
            return sorted(inst.slug for inst in ready)
        futures.update({pool.submit(plan, inst.id): inst.id for inst in ready[1:]})
        try:
            for future in as_completed(futures):
                if not start(futures[future], future.result()):
                    break
        finally:
            for future in futures:
                future.cancel()
    return sorted(inst.slug for iid, inst in by_id.items() if iid not in started)


def _cancel_requested(rollout_id: int) -> bool:
    """The rollout's cancel flag as the database has it now (an operator's cancel arrives from another process)."""
    return bool(db.session.execute(select(Rollout.cancel_requested).where(Rollout.id == rollout_id)).scalar())


def _target(rollout: Rollout, wave: dict, inst: Instance) -> tuple[str, str | None, int | None]:
    """(tag, digest, rollback_of) a tenant of the wave goes to: a rollback rollout names each tenant's own target,
    {"<instance id>": {"tag", "digest", "upgrade_id"}}; else the rollout's tag and digest."""
    target = (wave.get("targets") or {}).get(str(inst.id)) or {}
    return target.get("tag") or rollout.tag, target.get("digest", rollout.image_digest), target.get("upgrade_id")


def _start_waiting(rollout: Rollout, number: int, wave: dict) -> bool:
    """Start the wave's waiting tenants whose window is open now; True when any of them left `waiting`."""
    now = utcnow()
    waiting = dict(wave["waiting"])
    found = {i.slug: i for i in db.session.execute(select(Instance).where(Instance.slug.in_(list(waiting)))).scalars()}
    errors, still, held = dict(wave["errors"]), {}, dict(wave.get("held") or {})
    ready = []
    started = _started_ids(rollout, [inst.id for inst in found.values()])
    for slug in waiting:
        inst = found.get(slug)
        if inst is None:
            errors[slug] = "the instance was deleted while it waited for its maintenance window"
        elif _may_start(inst, now, still, held, started):
            ready.append(inst)
    cancelled = _start_planned(rollout, wave, ready, errors)
    started = [inst.slug for inst in ready if inst.slug not in cancelled]
    if len(still) == len(waiting):
        if still != waiting:  # the same tenants wait, some until another time (their window was changed)
            _save_wave(rollout, number, {**wave, "waiting": still})
        return False
    _save_wave(rollout, number, {**wave, "errors": errors, "waiting": still, "held": held,
                                 **({"cancelled": cancelled} if cancelled else {})})
    record(f"rollout:{rollout.id}", "rollout.wave.window_open",
           detail={"rollout_id": rollout.id, "wave": number + 1, "started": sorted(started), "waiting": sorted(still)})
    return True


def _started_ids(rollout: Rollout, instance_ids) -> set[int]:
    """Which of these instances already have an upgrade in the rollout (started by an earlier `advance`)."""
    return set(db.session.execute(select(Upgrade.instance_id).where(
        Upgrade.rollout_id == rollout.id, Upgrade.instance_id.in_(list(instance_ids)))).scalars())


def _may_start(inst: Instance, now, waiting: dict, held: dict, started: set[int]) -> bool:
    """True when `inst` is to be started in the rollout now; else why not is recorded: started already by an earlier
    `advance` (nothing), held (left out), outside its window (waits until it opens)."""
    if inst.id in started:
        return False  # started by an earlier `advance` that died before it saved the wave: never a second upgrade
    hold = windows.active_hold(inst, now)
    if hold is not None:
        held[inst.slug] = hold.sentence
        return False
    state = windows.window_state(inst, now)
    if not state.open:
        waiting[inst.slug] = iso_utc(state.next_open) if state.next_open else None
        return False
    return True


def _settled(wave: dict) -> dict:
    """The wave without its `starting` mark (its start is over, one way or another)."""
    return {key: value for key, value in wave.items() if key != "starting"}


def _unstarted(rollout: Rollout, wave: dict) -> list[str]:
    """Slugs of the wave's tenants with no upgrade in the rollout and no recorded reason (a `starting` wave whose
    start was cut short)."""
    started = _started_ids(rollout, wave["instances"])
    accounted = set(wave.get("errors") or ()) | set(wave.get("waiting") or ()) | set(wave.get("held") or ())
    rows = db.session.execute(select(Instance.id, Instance.slug).where(Instance.id.in_(wave["instances"])))
    return [slug for iid, slug in rows if iid not in started and slug not in accounted]


def _wave_outcome(rollout: Rollout, wave: dict) -> list[str] | None:
    """None while an upgrade of the wave is active; else the reasons it failed ([] when every tenant succeeded)."""
    upgrades = list(db.session.execute(select(Upgrade).where(
        Upgrade.rollout_id == rollout.id, Upgrade.instance_id.in_(wave["instances"]))).scalars())
    if any(u.status in ACTIVE_STATUSES for u in upgrades):
        return None
    reasons = [f"{slug} could not start ({why})" for slug, why in sorted(wave["errors"].items())]
    reasons += [f"{u.instance.slug} {u.status.replace('_', ' ')}" + (f" ({u.error})" if u.error else "")
                for u in upgrades if u.status != "succeeded"]
    if wave.get("waiting") and not rollout.cancel_requested and not reasons:
        return None  # complete only when every tenant ran (a failure ends it: the waiting ones never start)
    return reasons


def _failing(rollout: Rollout, wave: dict) -> bool:
    """True once a tenant of the wave could not start or its upgrade ended other than succeeded: the wave will not
    succeed, so its tenants still waiting for their windows are not started."""
    if wave["errors"]:
        return True
    return db.session.execute(select(func.count(Upgrade.id)).where(
        Upgrade.rollout_id == rollout.id, Upgrade.instance_id.in_(wave["instances"]),
        Upgrade.status.not_in((*ACTIVE_STATUSES, "succeeded")))).scalar() > 0


def _finish(rollout: Rollout, status: str, error: str | None = None) -> None:
    rollout.status, rollout.finished_at = status, utcnow()
    if error:
        rollout.error = error[:4000]
    db.session.commit()
    record(rollout.actor, "rollout.finish", result=status, detail={"rollout_id": rollout.id, "tag": rollout.tag})
