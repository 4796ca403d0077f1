"""RQ entry points. They take ids only (never ORM objects or secrets) and call services."""

from __future__ import annotations

from rq import get_current_job


def ping(value: str) -> dict:
    """A trivial job proving that the worker runs jobs in the app context: echoes `value` with the app name."""
    from flask import current_app

    job = get_current_job()
    if job is not None:
        job.meta["pinged"] = True
        job.save_meta()
    return {"value": value, "app": current_app.name}


def run_upgrade(upgrade_id: int) -> str:
    """Run one upgrade to a final status (see ccp.services.runner)."""
    from ccp.services.runner import run_upgrade as _run

    return _run(upgrade_id)


def advance_rollout(rollout_id: int) -> str:
    """Move a rollout on: start its next wave, or end it (see ccp.services.rollouts)."""
    from ccp.services.rollouts import advance

    return advance(rollout_id)


def decide_deliveries(receiver_id: int) -> int:
    """Decide a receiver's pending deliveries as one, after the coalescing window (see ccp.services.intake)."""
    from ccp.services.intake import decide_pending

    return decide_pending(receiver_id)


def scan_instance(run_id: int, instance_id: int) -> str:
    """Scan one instance for its scan run's kinds and count it done (see ccp.services.scan_runs)."""
    from ccp.services.scan_runs import scan_instance as _scan

    return _scan(run_id, instance_id)


def deliver_notification(channel_id: int, title: str, body: str, events: list) -> bool:
    """Send one batched notification through Apprise; raises to be retried (see ccp.services.notify)."""
    from ccp.services.notify import deliver

    return deliver(channel_id, title, body, events)


def run_agent_update(update_id: int) -> str:
    """Update one agent to CCP's agent version and let its agent update move on (see ccp.services.agent_updates)."""
    from ccp.services.agent_updates import run_agent_update as _run

    return _run(update_id)
