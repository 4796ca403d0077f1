"""Finding upgrades whose job died: marked `interrupted`, lock released, instance flagged. Never re-run blindly."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job

from ccp.services.changes import announce
from ccp.extensions import db, get_redis
from ccp.models import Upgrade, as_utc, utcnow
from ccp.services.audit import record
from ccp.services.rollout_queue import upgrade_ended

DEAD_JOB_STATES = ("failed", "stopped", "canceled")
QUEUED_GRACE_S = 30


def reap_interrupted() -> list[int]:
    """Mark running upgrades with a stale heartbeat, and queued ones whose RQ job is gone, as interrupted.

    Returns the ids marked. Safe to call often and from several processes (each update is conditional).
    """
    settings = current_app.config["CCP"]
    now = utcnow()
    stale_before = now - timedelta(seconds=settings.heartbeat_stale_s)
    candidates = db.session.execute(
        db.select(Upgrade).where(Upgrade.status.in_(("running", "queued")))
    ).scalars().all()
    reaped = []
    for upgrade in candidates:
        if upgrade.status == "running":
            beat = as_utc(upgrade.heartbeat_at or upgrade.started_at or upgrade.created_at)
            if beat >= stale_before:
                continue
            cause = "the worker running this upgrade stopped (no heartbeat)"
            condition = Upgrade.heartbeat_at == upgrade.heartbeat_at if upgrade.heartbeat_at else True
        else:
            if as_utc(upgrade.created_at) > now - timedelta(seconds=QUEUED_GRACE_S) or _job_alive(upgrade.job_id):
                continue
            cause = "its queued job was lost before it started"
            condition = True
        done = db.session.execute(
            db.update(Upgrade).where(Upgrade.id == upgrade.id, Upgrade.status == upgrade.status, condition)
            .values(status="interrupted", finished_at=now, error=cause)
        ).rowcount
        if not done:
            continue
        db.session.refresh(upgrade)
        for step in upgrade.steps:
            if step.status == "running":
                step.status, step.finished_at = "failed", now
                step.output_tail = (step.output_tail or "") + "\ninterrupted"
        upgrade.instance.attention = f"state unknown — preview to reconcile (upgrade #{upgrade.id} was interrupted)"
        db.session.commit()
        announce(upgrade.id)
        record("system", "upgrade.interrupt", instance=upgrade.instance, plan_hash=upgrade.plan_hash,
               result="interrupted", detail={"upgrade_id": upgrade.id, "cause": cause})
        reaped.append(upgrade.id)
        upgrade_ended(upgrade)
    return reaped


def _job_alive(job_id: str | None) -> bool:
    if not job_id:
        return False
    try:
        status = Job.fetch(job_id, connection=get_redis()).get_status(refresh=True)
    except NoSuchJobError:
        return False
    return status is not None and str(getattr(status, "value", status)) not in DEAD_JOB_STATES

