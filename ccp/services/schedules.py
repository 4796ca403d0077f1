"""Scan schedules: one cron expression (UTC, croniter syntax) per scan kind, kept in the database, edited by admins.

Every worker's housekeeping thread calls `run_due` (every 20 s). A due schedule is claimed with one conditional
UPDATE (`next_run_at` still the value read), so among several workers exactly one starts each run; a schedule whose
time passed while no worker ran fires once, not once per missed slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from croniter import croniter
from sqlalchemy import select, update

from ccp.extensions import db
from ccp.models import SCAN_KINDS, ScanRun, ScanSchedule, as_utc, utcnow
from ccp.services.audit import record
from ccp.services.errors import ServiceError
from ccp.services.scan_runs import start_scan

CRON_MAX = 100
MIN_INTERVAL_S = 60  # croniter accepts seconds fields; a scan every few seconds would only load the fleet


class ScheduleInvalid(ServiceError):
    status, code = 422, "invalid_schedule"


class ScheduleNotFound(ServiceError):
    status, code = 404, "not_found"


def _known(kind) -> str:
    if kind not in SCAN_KINDS:
        raise ScheduleNotFound(f"no schedule {str(kind)[:40]!r}: kinds are {', '.join(SCAN_KINDS)}")
    return kind


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as the admin page and the API show it, with its last run's outcome."""

    kind: str
    cron: str
    enabled: bool
    last_run_at: datetime | None
    next_run_at: datetime | None
    last_run_id: int | None
    last_run_summary: dict | None
    last_run_finished: bool


def next_after(cron: str, after: datetime) -> datetime:
    """The first time after `after` that `cron` names (UTC)."""
    return croniter(cron, as_utc(after)).get_next(datetime)


def check_cron(cron: str) -> str:
    """A cron expression as stored (trimmed); raises ScheduleInvalid naming what is wrong."""
    cron = (cron or "").strip() if isinstance(cron, str) else ""
    if not cron or len(cron) > CRON_MAX or len(cron.split()) != 5:
        raise ScheduleInvalid("a cron expression has five fields: minute hour day month weekday (e.g. '0 * * * *')",
                              {"cron": "five fields, e.g. 0 * * * *"})
    if not croniter.is_valid(cron):
        raise ScheduleInvalid(f"not a cron expression: {cron!r}", {"cron": "not a cron expression"})
    first = next_after(cron, utcnow())
    if (next_after(cron, first) - first).total_seconds() < MIN_INTERVAL_S:
        raise ScheduleInvalid("a scan schedule runs at most once a minute", {"cron": "at most once a minute"})
    return cron


def list_schedules() -> list[ScheduleView]:
    """Every schedule, in SCAN_KINDS order, with its last run (two queries)."""
    rows = {s.kind: s for s in db.session.execute(select(ScanSchedule)).scalars()}
    run_ids = [s.last_run_id for s in rows.values() if s.last_run_id]
    runs = {r.id: r for r in db.session.execute(select(ScanRun).where(ScanRun.id.in_(run_ids))).scalars()} \
        if run_ids else {}
    out = []
    for kind in SCAN_KINDS:
        s = rows.get(kind)
        if s is None:
            continue
        run = runs.get(s.last_run_id)
        out.append(ScheduleView(kind=kind, cron=s.cron, enabled=s.enabled, last_run_at=s.last_run_at,
                                next_run_at=s.next_run_at if s.enabled else None, last_run_id=s.last_run_id,
                                last_run_summary=run.summary if run else None,
                                last_run_finished=bool(run and run.finished_at)))
    return out


def update_schedule(kind: str, *, cron: str | None = None, enabled: bool | None = None, actor: str) -> ScanSchedule:
    """Change a schedule's cron expression and/or switch it on or off; its next run is recomputed. Audited.

    Raises ScheduleNotFound (unknown kind), ScheduleInvalid (bad expression); bad input changes nothing."""
    schedule = db.session.execute(select(ScanSchedule).filter_by(kind=_known(kind))).scalar_one_or_none()
    if schedule is None:
        raise ScheduleNotFound(f"no schedule {kind!r}")
    if enabled is not None and not isinstance(enabled, bool):
        raise ScheduleInvalid("enabled must be true or false", {"enabled": "true or false"})
    new_cron = check_cron(cron) if cron is not None else schedule.cron
    before = {"cron": schedule.cron, "enabled": schedule.enabled}
    schedule.cron = new_cron
    if enabled is not None:
        schedule.enabled = enabled
    schedule.next_run_at = next_after(new_cron, utcnow()) if schedule.enabled else None
    db.session.commit()
    record(actor, "schedule.update", target=f"schedule:{kind}",
           detail={"before": before, "after": {"cron": schedule.cron, "enabled": schedule.enabled}})
    return schedule


def run_due(now: datetime | None = None) -> list[int]:
    """Start the scan of every enabled schedule whose time has come; returns the ids of the runs started.

    A schedule without a next run (new, or just enabled elsewhere) gets one and waits for it."""
    now = now or utcnow()
    started = []
    for schedule in list(db.session.execute(select(ScanSchedule).where(ScanSchedule.enabled.is_(True))).scalars()):
        planned = schedule.next_run_at
        if planned is not None and as_utc(planned) > now:
            continue
        following = next_after(schedule.cron, now)
        claimed = db.session.execute(
            update(ScanSchedule).where(ScanSchedule.id == schedule.id,
                                       ScanSchedule.next_run_at.is_(None) if planned is None
                                       else ScanSchedule.next_run_at == planned)
            .values(next_run_at=following, **({} if planned is None else {"last_run_at": now}))
        ).rowcount
        db.session.commit()
        if claimed != 1 or planned is None:
            continue  # another worker took it, or it just got its first time
        run = start_scan([schedule.kind], source="schedule", actor=f"schedule:{schedule.kind}")
        db.session.execute(update(ScanSchedule).where(ScanSchedule.id == schedule.id).values(last_run_id=run.id))
        db.session.commit()
        started.append(run.id)
    return started


def run_now(kind: str, *, actor: str) -> ScanRun:
    """Start a schedule's scan at once (its regular times stay as they are); raises ScheduleNotFound."""
    run = start_scan([_known(kind)], source="manual", actor=actor)
    db.session.execute(update(ScanSchedule).where(ScanSchedule.kind == kind)
                       .values(last_run_id=run.id, last_run_at=run.created_at))
    db.session.commit()
    return run
