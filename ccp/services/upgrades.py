"""Upgrades: preview a release, start release/quick/full upgrades as RQ jobs, cancel, and the upgrade read model.

Upgrade statuses: queued, running (active); succeeded, failed, rolled_back, rollback_failed, interrupted, cancelled.
Release steps in order: render, check_plan, pre_upgrade, backup, write, env_patch, pull, up, verify, post_upgrade
(+ restore, rollback_up, rollback_verify when a rollback happens); the hook and backup steps are "skipped" for a
template set that declares none. A "restore" upgrade (start_restore) puts an earlier upgrade's data backup back.
Errors leave as UpgradeError subclasses (ccp.services.errors.ServiceError); the API and the UI present them.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from rq.job import Job
from sqlalchemy.exc import IntegrityError

from ccp import rules
from ccp.services.changes import announce
from ccp.drivers import AgentUnreachable, DriverError, driver_for
from ccp.extensions import db, get_queue, get_redis
from ccp.models import ACTIVE_STATUSES, FINAL_STATUSES, AuditEvent, Upgrade, UpgradeStep, as_utc, utcnow
from ccp.protocol import BACKUPS_CAPABILITY
from ccp.rules import check_tag
from ccp.rendering.render import RenderError
from ccp.rendering.sets import TemplateSetError
from ccp.services.audit import record
from ccp.services.backups import BACKUP_ID, hooks_time_s, template_set
from ccp.services.rollout_queue import upgrade_ended
from ccp.services.errors import ServiceError
from ccp.services.plan import APPLY_CAPS, PREVIEW_CAPS, Plan, Preview, build_plan
from ccp.services import windows

log = logging.getLogger(__name__)

RELEASE_STEPS = ("render", "check_plan", "pre_upgrade", "backup", "write", "env_patch", "pull", "up", "verify",
                 "post_upgrade")
QUICK_STEPS = ("pull", "up", "verify")
FULL_STEPS = ("script", "verify")
RESTORE_STEPS = ("restore_data", "up", "verify")
ROLLBACK_STEPS = ("restore", "rollback_up", "rollback_verify")
STEPS_BY_KIND = {"release": RELEASE_STEPS, "quick": QUICK_STEPS, "full": FULL_STEPS, "restore": RESTORE_STEPS}
# A release of a set with hooks or a backup also needs "hooks.run"/"backups" (ccp.services.hook_steps.check_caps).
CAPS_BY_KIND = {
    "release": APPLY_CAPS,
    "quick": ("compose.pull", "compose.up", "compose.ps"),
    "full": ("scripts.run", "compose.ps"),
    "restore": (BACKUPS_CAPABILITY, "compose.up", "compose.ps"),
}


class UpgradeError(ServiceError):
    """An upgrade request cannot be carried out (the subclasses below say why)."""

    code = "upgrade_error"


class TagInvalid(UpgradeError):
    status, code = 422, "invalid_tag"


class UpgradeConflict(UpgradeError):
    status, code = 409, "upgrade_active"


class PlanStale(UpgradeError):
    status, code = 409, "plan_stale"


class AgentTooOld(UpgradeError):
    status, code = 409, "agent_too_old"


class AgentUnavailable(UpgradeError):
    status, code = 502, "agent_unavailable"


class NotCancellable(UpgradeError):
    status, code = 409, "not_cancellable"


class RenderFailed(UpgradeError):
    status, code = 422, "render_failed"


class ConfirmationRequired(UpgradeError):
    """An action that overwrites data was asked for without its confirmation."""

    status, code = 422, "confirmation_required"


class NoBackup(UpgradeError):
    """A restore was asked for an upgrade that took no data backup."""

    status, code = 409, "no_backup"


class OutsideWindow(UpgradeError):
    """A manual start while the tenant's maintenance window is closed, not confirmed (`outside_window_ok`)."""

    status, code = 409, "outside_window"


class TenantHeld(UpgradeError):
    """A manual start of a held tenant, not confirmed (`held_ok`): a hold asks first, it does not lock."""

    status, code = 409, "held"


def preview_release(instance, tag: str | None) -> Preview:
    """Show what "Upgrade to Release" to `tag` would change on `instance`; reads only, changes nothing.

    Raises TagInvalid, RenderFailed, AgentUnavailable (names the agent), AgentTooOld (names the capability).
    """
    return Preview.of(instance, plan_release(instance, tag))


def plan_release(instance, tag: str | None, digest: str | None = None) -> Plan:
    """The plan "Upgrade to Release" to `tag` would carry out on `instance` (its hash binds an apply to it);
    `digest` is the release's image digest when it carries one (templates may pin it).

    Reads only; raises like preview_release.
    """
    tag = _checked_tag(instance, tag)
    try:
        driver = driver_for(instance, _settings())
    except DriverError as exc:  # e.g. a remote instance saved before its agent URL and key were required
        raise AgentUnavailable(f"cannot reach the agent of {instance.slug}: {exc.message}") from None
    check_agent(instance, driver, PREVIEW_CAPS)
    try:
        return build_plan(instance, tag, driver, digest)
    except (RenderError, TemplateSetError, ValueError) as exc:
        raise RenderFailed(f"cannot render {instance.slug}: {exc}") from None
    except DriverError as exc:
        raise _agent_error(exc, driver) from None


def start_release(instance, tag: str | None, *, plan: str | None = None, actor: str,
                  rollout_id: int | None = None, plan_checked: bool = False,
                  image_digest: str | None = None, rollback_of: int | None = None,
                  outside_window_ok: bool = False, held_ok: bool = False) -> Upgrade:
    """Queue "Upgrade to Release" to `tag` (optionally bound to a preview's plan hash, and part of a rollout).

    With `plan`, the plan is rebuilt now (one agent round trip) and a different hash is refused at once with
    PlanStale, nothing enqueued; the job checks again for changes after this request. `plan_checked` skips the
    request-time rebuild for a caller that built the plan a moment ago (a rollout's wave). `image_digest` is
    recorded on the upgrade (what the tag resolved to at the registry, when a receiver resolved it); `rollback_of`
    names the earlier successful upgrade whose release this one goes back to ("roll back to this release").
    Raises TagInvalid, PlanStale, AgentUnavailable, AgentTooOld or UpgradeConflict; nothing is enqueued then, and
    refusals of a well-formed request (409/502) are audited as `upgrade.start.release` with `refused:<code>`.
    A start outside the tenant's maintenance window or of a held tenant is refused (OutsideWindow, TenantHeld)
    unless confirmed with `outside_window_ok` / `held_ok` (see `check_manual_start`); a rollout's never is.
    """
    tag = _checked_tag(instance, tag)
    if plan is not None:
        try:
            rules.check_plan_hash(plan)
        except rules.RuleError as exc:
            raise UpgradeError(f"plan {exc}", {"plan": str(exc)}, status=422, code="validation_failed") from None
    with _audited_refusal(actor, "release", instance, plan, tag):
        confirmed = {} if rollout_id is not None else check_manual_start(instance, outside_window_ok, held_ok)
        if plan is not None and not plan_checked:
            current = plan_release(instance, tag, image_digest).plan_hash
            if current != plan:
                raise PlanStale(f"{instance.slug} changed since the preview (files on the host, template set or .env "
                                "keys): preview again and apply the new plan", {"plan": current})
        return _enqueue(instance, "release", actor, to_tag=tag, plan_hash=plan, rollout_id=rollout_id,
                        image_digest=image_digest, rollback_of=rollback_of, audit_detail=confirmed)


def start_quick(instance, *, actor: str, outside_window_ok: bool = False, held_ok: bool = False) -> Upgrade:
    """Queue a Quick Upgrade: compose pull + up -d with the files as they are, then verify.
    Refused like start_release outside the window or while held, unless confirmed."""
    with _audited_refusal(actor, "quick", instance, None, instance.image_tag):
        confirmed = check_manual_start(instance, outside_window_ok, held_ok)
        return _enqueue(instance, "quick", actor, to_tag=instance.image_tag, audit_detail=confirmed)


def start_full(instance, *, actor: str, outside_window_ok: bool = False, held_ok: bool = False) -> Upgrade:
    """Queue "Upgrade Now": the tenant's own scripts/upgrade.sh, then verify.
    Refused like start_release outside the window or while held, unless confirmed."""
    with _audited_refusal(actor, "full", instance, None, instance.image_tag):
        confirmed = check_manual_start(instance, outside_window_ok, held_ok)
        return _enqueue(instance, "full", actor, to_tag=instance.image_tag, audit_detail=confirmed)


def check_manual_start(instance, outside_window_ok: bool, held_ok: bool) -> dict:
    """What a manual start of `instance` needs confirmed now, as the audit detail of the start ({} when nothing,
    else {"held": true} and/or {"outside_window": true}). Raises TenantHeld while the tenant is held and `held_ok`
    is not given, then OutsideWindow while its window is closed and `outside_window_ok` is not given; their details
    say what to confirm (`confirm`) and, for the window, when it opens next (`nextOpen`)."""
    confirmed = {}
    hold = windows.active_hold(instance)
    if hold is not None:
        if not held_ok:
            raise TenantHeld(f"{instance.slug} is {hold.sentence}. A hold asks first, it does not lock: confirm to "
                             "upgrade it anyway", {"confirm": "heldOk", "hold": hold.sentence})
        confirmed["held"] = True
    state = windows.window_state(instance)
    if not state.open:
        opens = windows.local_label(state.next_open, state.window.timezone)
        if not outside_window_ok:
            raise OutsideWindow(
                f"{instance.slug} is outside its maintenance window ({state.window.label}; opens {opens}): confirm "
                "to upgrade it anyway", {"confirm": "outsideWindowOk", "window": state.window.label,
                                         "nextOpen": state.next_open.isoformat() if state.next_open else None,
                                         "opens": opens})
        confirmed["outside_window"] = True
    return confirmed


@contextmanager
def _audited_refusal(actor: str, kind: str, instance, plan: str | None, to_tag: str | None):
    """Record a refused start of a well-formed request (conflict, stale plan, agent down or too old), then re-raise.

    Bad input (400/422) is not audited: it names no real action, and a refused request must leave no row."""
    try:
        yield
    except UpgradeError as exc:
        db.session.rollback()
        if exc.status in (409, 502):
            record(actor, f"upgrade.start.{kind}", instance=instance, plan_hash=plan, result=f"refused:{exc.code}",
                   detail={"to_tag": to_tag})
        raise


def cancel_upgrade(upgrade: Upgrade, *, actor: str) -> Upgrade:
    """Cancel a queued upgrade at once, or ask a running one to stop at the next step boundary.

    A running upgrade that already changed files is rolled back by its job. Raises NotCancellable when final.
    """
    if upgrade.status == "queued":
        claimed = db.session.execute(
            db.update(Upgrade).where(Upgrade.id == upgrade.id, Upgrade.status == "queued")
            .values(status="cancelled", finished_at=utcnow(), error=f"cancelled by {actor} before it started")
        ).rowcount
        db.session.commit()
        if claimed:
            announce(upgrade.id)
            _cancel_job(upgrade.job_id)
            db.session.refresh(upgrade)
            upgrade_ended(upgrade)
            record(actor, "upgrade.cancel", instance=upgrade.instance, plan_hash=upgrade.plan_hash,
                   detail={"upgrade_id": upgrade.id, "was": "queued"})
            return upgrade
        db.session.refresh(upgrade)
    if upgrade.status == "running":
        upgrade.cancel_requested = True
        db.session.commit()
        announce(upgrade.id)
        record(actor, "upgrade.cancel", instance=upgrade.instance, plan_hash=upgrade.plan_hash,
               detail={"upgrade_id": upgrade.id, "was": "running"})
        return upgrade
    raise NotCancellable(f"upgrade {upgrade.id} is already {upgrade.status}")


def start_restore(instance, upgrade: Upgrade, *, actor: str, confirm: bool = False) -> Upgrade:
    """Queue a "restore" upgrade: the template set's restore hook puts back the data backup `upgrade` took before it
    wrote anything (restore_data), then compose up and verify. It overwrites the tenant's current data, so the
    operator must say so: without `confirm` it raises ConfirmationRequired (422), nothing queued.

    Raises ConfirmationRequired, NoBackup (409: the upgrade took none, or belongs to another instance's history),
    RenderFailed (the set no longer declares a [backup]) or UpgradeConflict; refusals are audited like other starts.
    The automatic rollback of a release never restores data: this is the only way it happens.
    """
    with _audited_refusal(actor, "restore", instance, None, instance.image_tag):
        if upgrade.instance_id != instance.id or upgrade.kind == "restore" or not upgrade.backup_id \
                or not BACKUP_ID.fullmatch(upgrade.backup_id):
            raise NoBackup(f"upgrade #{upgrade.id} took no data backup of {instance.slug}: nothing to restore")
        if confirm is not True:
            raise ConfirmationRequired(
                f"restoring backup {upgrade.backup_id} overwrites the current data of {instance.slug} with the data "
                f"it had before upgrade #{upgrade.id}: confirm to restore", {"confirm": "must be true"})
        try:
            tset = template_set(instance)
        except TemplateSetError as exc:
            raise RenderFailed(f"cannot load the template set of {instance.slug}: {exc}") from None
        if tset.backup is None:
            raise RenderFailed(f"template set {tset.name} {tset.version} no longer declares a [backup] with a "
                               "restore hook: nothing can restore this backup")
        return _enqueue(instance, "restore", actor, to_tag=instance.image_tag, backup_id=upgrade.backup_id)


@dataclass(frozen=True)
class StepStatus:
    """One recorded step of an upgrade."""

    name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    output_tail: str | None  # masked when recorded: no secrets

    @property
    def duration_s(self) -> float | None:
        """Seconds the step took (None until finished)."""
        return _seconds(self.started_at, self.finished_at)


@dataclass(frozen=True)
class UpgradeStatus:
    """The one read model of an upgrade and its steps: what the API returns and the status widget shows.

    Plain values (no ORM object, no secrets); naive datetimes (SQLite) are UTC."""

    id: int
    kind: str
    status: str
    from_tag: str | None
    to_tag: str | None
    plan_hash: str | None
    actor: str
    error: str | None
    cancel_requested: bool
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    instance_id: int
    instance_slug: str
    instance_name: str
    steps: tuple[StepStatus, ...] = ()
    image_digest: str | None = None  # what the tag resolved to at the registry, when a receiver resolved it
    backup_id: str | None = None  # the data backup it took (a "restore" upgrade: the one it restores)
    rollback_of: int | None = None  # the earlier release this one rolls back to (ccp.services.history)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (None until both are known)."""
        return _seconds(self.started_at, self.finished_at)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def upgrade_status(upgrade: Upgrade) -> UpgradeStatus:
    """The read model of an upgrade (reads its instance and steps)."""
    return UpgradeStatus(
        id=upgrade.id, kind=upgrade.kind, status=upgrade.status, from_tag=upgrade.from_tag, to_tag=upgrade.to_tag,
        plan_hash=upgrade.plan_hash, actor=upgrade.actor, error=upgrade.error,
        cancel_requested=bool(upgrade.cancel_requested), created_at=upgrade.created_at,
        started_at=upgrade.started_at, finished_at=upgrade.finished_at, instance_id=upgrade.instance_id,
        instance_slug=upgrade.instance.slug, instance_name=upgrade.instance.name, image_digest=upgrade.image_digest,
        backup_id=upgrade.backup_id,
        rollback_of=upgrade.rollback_of,
        steps=tuple(StepStatus(s.name, s.status, s.started_at, s.finished_at, s.output_tail) for s in upgrade.steps),
    )


# check_agent records "agent seen" at most this often when nothing else changed: a database write (an fsync on SQLite,
# ~20 ms here) on every preview was a quarter of its time (bench/bench_preview.py).
SEEN_WRITE_EVERY_S = 30.0


def check_agent(instance, driver, needed: tuple[str, ...]) -> dict:
    """Ask the host for its version and capabilities, store them on the instance, and require `needed`.

    The instance row is written when the version or capabilities changed, or "last seen" is SEEN_WRITE_EVERY_S old.

    Raises AgentUnavailable or AgentTooOld (naming the missing capability).
    """
    try:
        health = driver.health()
    except DriverError as exc:
        raise _agent_error(exc, driver) from None
    version, capabilities = str(health.get("version") or "unknown"), sorted(health.get("capabilities") or [])
    now = utcnow()
    seen = instance.last_seen_at
    if (version, capabilities) != (instance.agent_version, instance.agent_capabilities) or seen is None \
            or (now - as_utc(seen)).total_seconds() >= SEEN_WRITE_EVERY_S:
        instance.agent_version, instance.agent_capabilities, instance.last_seen_at = version, capabilities, now
        db.session.commit()
    missing = [cap for cap in needed if cap not in instance.agent_capabilities]
    if missing:
        raise AgentTooOld(
            f"agent {instance.agent_version} at {driver.target} is too old for this action: it lacks "
            f"{', '.join(missing)}; upgrade the agent on the tenant host", {"missing": missing})
    return health


def _enqueue(instance, kind: str, actor: str, audit_detail: dict | None = None, **fields) -> Upgrade:
    """Record the queued upgrade, its steps and its audit event in one commit, then queue its job (under an id
    chosen here, so nothing is written twice). Redis down: the upgrade is marked failed and its audit event says so.
    Raises UpgradeConflict (another active upgrade: the partial unique index) or UpgradeError (Redis down)."""
    instance_id, slug = instance.id, instance.slug
    timeout = _settings().job_timeout_s + (int(hooks_time_s(instance)) if kind in ("release", "restore") else 0)
    job_id = str(uuid.uuid4())  # what RQ itself would choose
    upgrade = Upgrade(instance_id=instance_id, kind=kind, status="queued", actor=actor,
                      from_tag=instance.image_tag, job_id=job_id, **fields)
    upgrade.steps = [UpgradeStep(position=i, name=name) for i, name in enumerate(STEPS_BY_KIND[kind])]
    db.session.add(upgrade)
    try:
        db.session.flush()  # the partial unique index refuses a second active upgrade here
    except IntegrityError:
        db.session.rollback()
        active = instance.upgrades.filter(Upgrade.status.in_(ACTIVE_STATUSES)).first()
        raise UpgradeConflict(
            f"{slug} already has an active upgrade" + (f" (#{active.id}, {active.status})" if active else ""),
            {"active_upgrade_id": active.id if active else None}) from None
    upgrade_id = upgrade.id
    event = AuditEvent(actor=actor, action=f"upgrade.start.{kind}", instance_id=instance_id, target=slug,
                       plan_hash=upgrade.plan_hash, result="ok",
                       detail={"upgrade_id": upgrade_id, "to_tag": upgrade.to_tag, **(audit_detail or {})})
    db.session.add(event)
    db.session.commit()
    try:
        get_queue().enqueue("ccp.jobs.run_upgrade", upgrade_id, job_id=job_id, job_timeout=timeout,
                            description=f"{kind} upgrade #{upgrade_id} of {slug}")
    except Exception as exc:  # noqa: BLE001 - Redis down: release the lock row, tell the caller
        upgrade.status, upgrade.error, upgrade.finished_at = "failed", "could not enqueue: Redis unavailable", utcnow()
        event.result = "failed:redis_unavailable"
        db.session.commit()
        announce(upgrade_id)
        raise UpgradeError("cannot queue the upgrade: Redis is unavailable", {"reason": type(exc).__name__}) from None
    announce(upgrade_id)
    return upgrade


def _checked_tag(instance, tag: str | None) -> str:
    chosen = tag or instance.image_tag or _settings().default_image_tag
    try:
        return check_tag(chosen)
    except ValueError as exc:
        raise TagInvalid(str(exc), {"imageTag": str(exc)}) from None


def _agent_error(exc: DriverError, driver) -> UpgradeError:
    if isinstance(exc, AgentUnreachable):
        # the client's message already reads "agent at URL is unreachable/timed out: ..."; do not say it twice
        if driver.target in exc.message:
            return AgentUnavailable(exc.message)
        return AgentUnavailable(f"agent at {driver.target} is unreachable: {exc.message}")
    return AgentUnavailable(f"agent at {driver.target} refused: {exc.message}", {"agent_status": exc.status})


def _cancel_job(job_id: str | None) -> None:
    if not job_id:
        return
    try:
        Job.fetch(job_id, connection=get_redis()).cancel()
    except Exception:  # noqa: BLE001 - the job may already be gone; the DB row is the truth
        log.info("job %s could not be cancelled in RQ (already gone)", job_id)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (as_utc(end) - as_utc(start)).total_seconds()


def _settings():
    return current_app.config["CCP"]


