"""Scan runs: a scan of the fleet fanned out as one RQ job per instance, so several workers share a big fleet.

`start_scan` records a ScanRun and enqueues `ccp.jobs.scan_instance(run_id, instance_id)` per instance. Each job
scans its instance (ccp.services.scans) and adds one to the run's `done` in a single UPDATE ... RETURNING; the job
that brings `done` to `total` ends the run: it writes the run's summary and queues its one batched notification
(ccp.services.notify). Schedules (ccp.services.schedules) start runs the same way.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import Queue
from sqlalchemy import func, or_, select, update

from ccp.extensions import db, get_background_queue
from ccp.models import SCAN_KINDS, Instance, InstanceScan, ScanRun, iso_utc, utcnow
from ccp.services import scans
from ccp.services.audit import record
from ccp.services.errors import ServiceError

log = logging.getLogger(__name__)
JOB_TIMEOUT_S = 300
ENQUEUE_BATCH = 500
LISTED = 1000  # entries a summary keeps per finding (counts are always whole; messages name fewer)
STALE_AFTER_S = 2 * JOB_TIMEOUT_S  # no progress for twice a job's deadline: its jobs have ended or died
PREVIOUS_LOOKED_AT = 20  # earlier runs searched for the last one of a kind
_cache: dict = {"run": None, "data": {}}  # registry answers of the run this worker scans now (see scan_updates)


class ScanInvalid(ServiceError):
    status, code = 422, "invalid_scan"


def start_scan(kinds, *, source: str = "manual", actor: str, instance_ids=None) -> ScanRun:
    """Record a run of `kinds` (drift, updates, agents) and queue one job per instance (every instance, or those
    of `instance_ids`). Raises ScanInvalid for an unknown kind, ServiceError when Redis is unavailable."""
    if not isinstance(kinds, (list, tuple)) or not all(isinstance(k, str) for k in kinds):
        raise ScanInvalid(f"scan kinds: a list among {', '.join(SCAN_KINDS)}", {"kinds": "a list of names"})
    kinds = sorted(set(kinds))
    bad = [k[:40] for k in kinds if k not in SCAN_KINDS]
    if not kinds or bad:
        raise ScanInvalid(f"scan kinds must be among {', '.join(SCAN_KINDS)}", {"kinds": bad or "none given"})
    stmt = select(Instance.id).order_by(Instance.id)
    if instance_ids is not None:
        stmt = stmt.where(Instance.id.in_(list(instance_ids)))
    ids = list(db.session.execute(stmt).scalars())
    run = ScanRun(kinds=kinds, source=source, actor=actor, total=len(ids), done=0, summary={})
    db.session.add(run)
    db.session.commit()
    queue = get_background_queue()  # behind upgrades and rollouts: a scan never delays them
    try:  # one Redis pipeline for the whole fleet (a round trip per job was ~1 s of a 400-tenant scan)
        for chunk in range(0, len(ids), ENQUEUE_BATCH):
            queue.enqueue_many([
                Queue.prepare_data("ccp.jobs.scan_instance", (run.id, instance_id), timeout=JOB_TIMEOUT_S,
                                   description=f"scan ({', '.join(kinds)}) of instance #{instance_id}, run #{run.id}")
                for instance_id in ids[chunk:chunk + ENQUEUE_BATCH]])
    except Exception as exc:  # noqa: BLE001 - Redis down: end the run so it does not look busy forever
        run.finished_at, run.summary = utcnow(), {"error": "could not enqueue: Redis unavailable"}
        db.session.commit()
        raise ServiceError("cannot queue the scan: Redis is unavailable", {"reason": type(exc).__name__}) from None
    record(actor, "scan.start", target=f"scan#{run.id}", detail={"kinds": kinds, "instances": len(ids),
                                                                  "source": source})
    if not ids:
        finish_run(run.id)
    return run


def scan_instance(run_id: int, instance_id: int) -> str:
    """Scan one instance for its run's kinds, then count it done (ending the run when it is the last one).

    Returns a short result for the job (the states found); an instance deleted meanwhile counts as done."""
    run = db.session.get(ScanRun, run_id)
    if run is None:
        return "run gone"
    found = "instance gone"
    try:
        instance = db.session.get(Instance, instance_id)
        if instance is not None:
            found = _scan(instance, run)
    except Exception:  # noqa: BLE001 - one broken tenant must not stop the run from ending
        log.exception("scan of instance #%s failed", instance_id)
        db.session.rollback()
        found = "failed"
    finally:
        _count_done(run_id)
    return found


def _scan(instance: Instance, run: ScanRun) -> str:
    if _cache["run"] != run.id:
        _cache.update(run=run.id, data={})
    row = scans.scan_row(instance.id)
    row.scan_run_id = run.id
    found = []
    reachable = scans.scan_agent(instance, row)
    if "drift" in run.kinds:
        if reachable:
            found.append(scans.scan_drift(instance, row))
        else:
            row.sync_state, row.drifted_files, row.drift_at = "unreachable", [], utcnow()
            found.append("unreachable")
    if "updates" in run.kinds:
        found.append(scans.scan_updates(instance, row, _cache["data"]))
    if not reachable and "drift" not in run.kinds:
        found.append("unreachable")
    db.session.commit()
    return ", ".join(found) or "agent"


def _count_done(run_id: int) -> None:
    result = db.session.execute(update(ScanRun).where(ScanRun.id == run_id).values(done=ScanRun.done + 1)
                                .returning(ScanRun.done, ScanRun.total)).first()
    db.session.commit()
    if result is not None and result.done == result.total:
        finish_run(run_id)


def end_stale_runs(now=None) -> list[int]:
    """End the runs that can no longer end by themselves (a worker killed in the middle of a job never counts it
    done): unfinished, and no instance of theirs scanned for STALE_AFTER_S (since they started, when none was). Each
    is claimed by one conditional UPDATE (one worker ends it); its summary says how many instances were not scanned
    (a late job still writes its instance's row). Returns their ids."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=STALE_AFTER_S)
    last_scanned = (select(func.max(InstanceScan.agent_at)).where(InstanceScan.scan_run_id == ScanRun.id)
                    .correlate(ScanRun).scalar_subquery())
    stale = db.session.execute(select(ScanRun.id).where(
        ScanRun.finished_at.is_(None), ScanRun.created_at < cutoff,
        or_(last_scanned.is_(None), last_scanned < cutoff))).scalars().all()
    ended = []
    for run_id in stale:
        claimed = db.session.execute(update(ScanRun).where(ScanRun.id == run_id, ScanRun.finished_at.is_(None))
                                     .values(finished_at=now)).rowcount
        db.session.commit()
        if claimed == 1:
            finish_run(run_id)
            ended.append(run_id)
    return ended


def finish_run(run_id: int) -> ScanRun:
    """End a run: summarise what its instances' rows say and queue the batched notification of its findings."""
    run = db.session.get(ScanRun, run_id)
    rows = db.session.execute(
        select(Instance.slug, InstanceScan.sync_state, InstanceScan.drifted_files, InstanceScan.update_state,
               InstanceScan.behind_by, InstanceScan.newest_tag, InstanceScan.unreachable_since)
        .join(InstanceScan, InstanceScan.instance_id == Instance.id)
        .where(InstanceScan.scan_run_id == run_id).order_by(Instance.slug)).all()
    drifted = [{"slug": r.slug, "files": list(r.drifted_files or [])[:10]} for r in rows if r.sync_state == "drifted"]
    updates = [{"slug": r.slug, "state": r.update_state, "behind_by": r.behind_by, "newest": r.newest_tag}
               for r in rows if r.update_state == "update_available" or (r.behind_by or 0) > 0]
    unreachable = [{"slug": r.slug, "since": iso_utc(r.unreachable_since)} for r in rows if r.unreachable_since]
    before = _previous_summaries(run)
    run.summary = {"scanned": len(rows), "drifted": len(drifted), "updates": len(updates),
                   "unreachable": len(unreachable), "drifted_list": drifted[:LISTED],
                   "updates_list": updates[:LISTED], "unreachable_list": unreachable[:LISTED],
                   # what this run found that the previous run of its kind did not (what notifications tell)
                   "new_drifted_list": _new(drifted, before.get("drift"), "drifted_list")
                   if "drift" in run.kinds else [],
                   "new_updates_list": _new(updates, before.get("updates"), "updates_list")
                   if "updates" in run.kinds else [],
                   "previous_run_at": before.get("at"), "not_scanned": max(0, run.total - run.done)}
    run.finished_at = utcnow()
    db.session.commit()
    record(run.actor, "scan.finish", target=f"scan#{run.id}",
           detail={k: run.summary[k] for k in ("scanned", "drifted", "updates", "unreachable")})
    from ccp.services.notify import queue_scan_notification  # notify reads runs: imported late, no cycle

    queue_scan_notification(run.id)
    return run


def _previous_summaries(run: ScanRun) -> dict:
    """The summaries of the latest finished earlier runs that scanned drift and updates, and when the latest
    earlier run of any kind started (for "unreachable for longer than X": told once, when it crosses X)."""
    earlier = db.session.execute(select(ScanRun).where(ScanRun.id < run.id, ScanRun.finished_at.is_not(None))
                                 .order_by(ScanRun.id.desc()).limit(PREVIOUS_LOOKED_AT)).scalars().all()
    out = {"at": iso_utc(earlier[0].created_at) if earlier else None}
    for kind in ("drift", "updates"):
        found = next((r for r in earlier if kind in (r.kinds or ())), None)
        out[kind] = found.summary if found is not None else None
    return out


def _new(found: list[dict], previous: dict | None, key: str) -> list[dict]:
    """The entries of `found` the previous summary did not list the same way (all of them without one)."""
    seen = (previous or {}).get(key) or []
    return [entry for entry in found if entry not in seen][:LISTED]


def recent_runs(limit: int = 10) -> list[ScanRun]:
    """The latest scan runs, newest first."""
    return list(db.session.execute(select(ScanRun).order_by(ScanRun.id.desc()).limit(limit)).scalars())


def latest_run() -> ScanRun | None:
    """The newest scan run, or None."""
    return db.session.execute(select(ScanRun).order_by(ScanRun.id.desc()).limit(1)).scalar_one_or_none()
