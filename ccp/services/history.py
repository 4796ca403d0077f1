"""A tenant's release history, and "Roll back to this release".

The history is the tenant's succeeded "Upgrade to Release" upgrades, newest first; the newest is the current one.
Each says what the release put on the tenant, as recorded when it rendered (ccp.services.plan.record_release): the
tag, the registry digest, the template set and its version, the sha256 of every rendered file (a provisioned
tenant's .env left out), who applied it and when. Releases applied before this was recorded (issue #16) have no set
or file hashes: they are listed with their tag, who and when, and say their files are not known.

Rolling back to an earlier release is an ordinary previewed, plan-bound Upgrade to Release to that release's tag:
the same plan check, snapshot, verify and automatic rollback. It carries the digest recorded with the release and
`rollback_of` naming it. Its preview also says whether the files will be exactly what the release put there: the
template set may have changed since, and then the files it now renders differently are listed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ccp import rules
from ccp.extensions import db
from ccp.models import Upgrade
from ccp.services import upgrades as upgrade_svc
from ccp.services.audit import record
from ccp.services.plan import ENV_FILE, Preview
from ccp.services.upgrades import UpgradeError

HISTORY_LIMIT = 100  # releases listed per tenant; older ones stay in the upgrades list and the API


class RollbackRefused(UpgradeError):
    """The upgrade named cannot be rolled back to (the status and code say why); nothing was started."""

    status, code = 422, "not_a_release"


@dataclass(frozen=True)
class Release:
    """One succeeded release of a tenant: what it put there, who applied it and when. Plain values."""

    upgrade_id: int
    tag: str | None
    from_tag: str | None
    image_digest: str | None
    set_name: str | None  # None: applied before the release history was recorded
    set_version: str | None
    file_hashes: dict[str, str] | None  # relpath -> sha256 of what the release rendered (no provisioned .env)
    actor: str
    applied_at: datetime | None  # when it finished (naive datetimes are UTC)
    current: bool  # the newest release: what the tenant runs now
    rollback_of: int | None = None  # the earlier release this one went back to
    rollout_id: int | None = None

    @property
    def recorded(self) -> bool:
        """True when the set and the file hashes were recorded (releases since issue #16)."""
        return self.file_hashes is not None

    @property
    def set_label(self) -> str | None:
        """'default 1.0.0', or None when not recorded."""
        return f"{self.set_name} {self.set_version}" if self.set_name else None


@dataclass(frozen=True)
class FileDrift:
    """A file a rollback will not put back exactly as the release had it: `change` is 'differs' (rendered
    differently now), 'new' (the set renders it now; the release had no such file) or 'gone' (the release had it;
    the set no longer renders it, so it stays on the host as it is)."""

    path: str
    change: str


@dataclass(frozen=True)
class RollbackPreview:
    """What rolling back to `target` would do: the release preview of its tag (`preview`, whose plan hash an apply
    is bound to) and how the files compare with those the release put there (`drift`; None: not recorded)."""

    target: Release
    preview: Preview
    drift: tuple[FileDrift, ...] | None

    @property
    def identical(self) -> bool:
        """True when every file will be exactly what the release put there (as far as it was recorded)."""
        return self.drift == ()

    @property
    def set_changed(self) -> bool:
        """True when the template set's version differs from the one the release rendered."""
        return self.target.recorded and (self.target.set_name, self.target.set_version) != (
            self.preview.set_name, self.preview.set_version)


def release_history(instance, limit: int = HISTORY_LIMIT) -> list[Release]:
    """The tenant's succeeded releases, newest first (at most `limit`); the first is the current one. One query."""
    rows = db.session.execute(
        select(Upgrade).where(Upgrade.instance_id == instance.id, Upgrade.kind == "release",
                              Upgrade.status == "succeeded")
        .order_by(func.coalesce(Upgrade.finished_at, Upgrade.created_at).desc(), Upgrade.id.desc())
        .limit(limit)).scalars()
    return [_release(u, current=i == 0) for i, u in enumerate(rows)]


def rollback_target(instance, upgrade_id) -> Release:
    """The earlier release of `instance` that upgrade `upgrade_id` applied, checked as a rollback target.

    Raises RollbackRefused: 404 `not_found` (no such upgrade of this tenant), 422 `not_a_release` (not a succeeded
    Upgrade to Release) or 409 `already_current` (the release the tenant runs now)."""
    upgrade = db.session.get(Upgrade, upgrade_id) if _is_id(upgrade_id) else None
    if upgrade is None or upgrade.instance_id != instance.id:
        raise RollbackRefused(f"{instance.slug} has no upgrade #{upgrade_id}"[:200], status=404, code="not_found")
    if upgrade.kind != "release" or upgrade.status != "succeeded":
        what = "release" if upgrade.kind == "release" else f"{upgrade.kind} upgrade"
        raise RollbackRefused(f"upgrade #{upgrade.id} is a {what} that ended {upgrade.status.replace('_', ' ')}: only "
                              "a succeeded Upgrade to Release can be rolled back to",
                              {"upgrade_id": upgrade.id, "kind": upgrade.kind, "status": upgrade.status})
    current = release_history(instance, limit=1)
    if current and current[0].upgrade_id == upgrade.id:
        raise RollbackRefused(f"release #{upgrade.id} ({upgrade.to_tag}) is the one {instance.slug} runs now: "
                              "nothing to roll back to", {"upgrade_id": upgrade.id}, status=409,
                              code="already_current")
    return _release(upgrade, current=False)


def preview_rollback(instance, upgrade_id) -> RollbackPreview:
    """Preview rolling `instance` back to the release of upgrade `upgrade_id`; reads only, changes nothing.

    Raises RollbackRefused, or what preview_release raises (AgentUnavailable, AgentTooOld, RenderFailed...)."""
    target = rollback_target(instance, upgrade_id)
    plan = upgrade_svc.plan_release(instance, target.tag, target.image_digest)  # rendered as the apply will
    return RollbackPreview(target=target, preview=Preview.of(instance, plan), drift=_drift(target, plan.files))


def start_rollback(instance, upgrade_id, *, plan, actor: str, **options) -> Upgrade:
    """Queue the Upgrade to Release that rolls `instance` back to the release of upgrade `upgrade_id`, bound to a
    preview's plan hash (required), with the release's recorded digest and `rollback_of` set. `options` go to
    start_release as they are.

    Raises UpgradeError 422 (no plan, or not a plan hash), RollbackRefused, or what start_release raises
    (PlanStale, UpgradeConflict, OutsideWindow...); nothing is started then."""
    if not plan:  # the request's own fields first: a malformed one is refused whatever it names
        raise UpgradeError("a rollback applies a previewed plan: preview it and send the preview's plan_hash",
                           {"plan": "required"}, status=422, code="validation_failed")
    try:
        rules.check_plan_hash(plan)
    except rules.RuleError as exc:
        raise UpgradeError(f"plan {exc}", {"plan": str(exc)}, status=422, code="validation_failed") from None
    target = rollback_target(instance, upgrade_id)
    upgrade = upgrade_svc.start_release(instance, target.tag, plan=plan, actor=actor,
                                        image_digest=target.image_digest, rollback_of=target.upgrade_id, **options)
    record(actor, "upgrade.rollback", instance=instance, plan_hash=upgrade.plan_hash,
           detail={"upgrade_id": upgrade.id, "rollback_of": target.upgrade_id, "to_tag": target.tag})
    return upgrade


def _drift(target: Release, files: dict[str, str]) -> tuple[FileDrift, ...] | None:
    if target.file_hashes is None:
        return None
    now = {path: hashlib.sha256(content.encode()).hexdigest() for path, content in files.items() if path != ENV_FILE}
    then = target.file_hashes
    out = [FileDrift(path, "differs") for path in sorted(now) if path in then and now[path] != then[path]]
    out += [FileDrift(path, "new") for path in sorted(now) if path not in then]
    out += [FileDrift(path, "gone") for path in sorted(then) if path not in now]
    return tuple(out)


def _release(upgrade: Upgrade, *, current: bool) -> Release:
    return Release(upgrade_id=upgrade.id, tag=upgrade.to_tag, from_tag=upgrade.from_tag,
                   image_digest=upgrade.image_digest, set_name=upgrade.set_name, set_version=upgrade.set_version,
                   file_hashes=dict(upgrade.file_hashes) if upgrade.file_hashes is not None else None,
                   actor=upgrade.actor, applied_at=upgrade.finished_at or upgrade.created_at, current=current,
                   rollback_of=upgrade.rollback_of, rollout_id=upgrade.rollout_id)


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2**62
