"""The read model of a rollout's progress: its waves and, per tenant, from which tag to which, its upgrade's status,
how long it took and why it failed. Built from what a rollout records (its `waves` JSON and the upgrades that carry
its id), in a constant number of queries however many tenants it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ccp.extensions import db
from ccp.models import Instance, Rollout, Upgrade, as_utc


@dataclass(frozen=True)
class TenantProgress:
    """One tenant of a wave: its upgrade's status, or without one `not_started`, `planning` (its wave is being
    started), `could_not_start` (with why),
    `waiting` (outside its maintenance window: starts when it opens, `waits_until`) or `held` (with the hold).

    `from_tag` is the tag the upgrade started from; for a tenant without an upgrade, the tag it is on now."""

    instance_id: int
    slug: str | None  # None once the instance was deleted
    deleted: bool
    upgrade_id: int | None
    status: str
    error: str | None
    from_tag: str | None = None
    to_tag: str | None = None
    started_at: datetime | None = None  # the upgrade's (naive datetimes are UTC)
    finished_at: datetime | None = None
    waits_until: datetime | None = None  # when its maintenance window opens (status "waiting")

    @property
    def label(self) -> str:
        """The slug, or "#<id> (deleted)"."""
        return f"#{self.instance_id} (deleted)" if self.deleted else self.slug

    @property
    def duration_s(self) -> float | None:
        """Seconds the upgrade ran, start to end (None until it has ended, or without an upgrade)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (as_utc(self.finished_at) - as_utc(self.started_at)).total_seconds()


@dataclass(frozen=True)
class WaveProgress:
    """One wave of a rollout: its status (pending, running, succeeded, failed), when it ran, its tenants."""

    number: int  # from 1; wave 1 is the canary
    status: str
    started_at: str | None  # ISO 8601, as recorded
    finished_at: str | None
    tenants: tuple[TenantProgress, ...]


def rollout_waves(rollout: Rollout) -> tuple[WaveProgress, ...]:
    """A rollout's waves with each tenant's upgrade, tags, timing and status (two queries, however many tenants)."""
    upgrades = {u.instance_id: u for u in db.session.execute(
        select(Upgrade).where(Upgrade.rollout_id == rollout.id).order_by(Upgrade.id)).scalars()}
    wanted = {iid for wave in rollout.waves for iid in wave["instances"]}
    found = {row.id: row for row in db.session.execute(
        select(Instance.id, Instance.slug, Instance.image_tag).where(Instance.id.in_(wanted)))} if wanted else {}
    return tuple(WaveProgress(number=number, status=wave["status"], started_at=wave.get("started_at"),
                              finished_at=wave.get("finished_at"),
                              tenants=tuple(_tenant(_target_tag(rollout, wave, iid), iid, found.get(iid),
                                                    upgrades.get(iid), wave) for iid in wave["instances"]))
                 for number, wave in enumerate(rollout.waves, 1))


def _target_tag(rollout: Rollout, wave: dict, instance_id: int) -> str:
    """The tag a tenant of the wave goes to: its own target in a rollback rollout, else the rollout's tag."""
    return ((wave.get("targets") or {}).get(str(instance_id)) or {}).get("tag") or rollout.tag


def _tenant(tag: str, instance_id: int, row, upgrade: Upgrade | None, wave: dict) -> TenantProgress:
    slug = row.slug if row is not None else None
    if upgrade is not None:
        return TenantProgress(instance_id=instance_id, slug=slug, deleted=slug is None, upgrade_id=upgrade.id,
                              status=upgrade.status, error=upgrade.error, from_tag=upgrade.from_tag,
                              to_tag=upgrade.to_tag or tag, started_at=upgrade.started_at,
                              finished_at=upgrade.finished_at)
    key = slug or f"#{instance_id}"  # a wave records a deleted tenant's reason under "#<id>"
    errors, waiting, held = wave["errors"], wave.get("waiting") or {}, wave.get("held") or {}
    status, error, until = "not_started", None, None
    if key in errors:
        status, error = "could_not_start", errors[key]
    elif key in waiting:
        status, until = "waiting", datetime.fromisoformat(waiting[key]) if waiting[key] else None
    elif key in held:
        status, error = "held", held[key]
    elif wave.get("starting"):
        status = "planning"  # its wave is being started: its plan is being made, its upgrade queued next
    elif key in (wave.get("cancelled") or ()):
        error = "the rollout was cancelled before its upgrade started"
    elif key in (wave.get("not_started") or ()):
        error = "waited for its maintenance window; the rollout ended first"
    return TenantProgress(instance_id=instance_id, slug=slug, deleted=slug is None, upgrade_id=None, status=status,
                          error=error, from_tag=row.image_tag if row is not None else None, to_tag=tag,
                          waits_until=until)
