"""Snapshot of everything an API call could change (for "denied calls change nothing")."""

from __future__ import annotations

import sqlalchemy as sa

from ccp.extensions import worker_queues

DB_TABLES = ("instances", "upgrades", "upgrade_steps", "audit_events", "api_tokens", "users", "rollouts",
             "webhook_deliveries", "receivers", "scan_runs", "scan_schedules", "notification_channels",
             "agent_rollouts", "agent_updates")


def snapshot(db) -> dict:
    """Every row of the tables a call could change (token last-use time excluded), plus the queue length."""
    state = {}
    for table in DB_TABLES:
        rows = db.session.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).mappings().all()
        state[table] = [{k: v for k, v in r.items() if k != "last_used_at"} for r in rows]
    state["queue"] = [queue.count for queue in worker_queues()]
    db.session.rollback()
    return state
