"""Queueing a rollout's next step by job name (`ccp.jobs.advance_rollout`), for the rollouts service and for the end
of every upgrade: an upgrade that ends lets its rollout move on without the upgrades service importing rollouts
(which imports upgrades to start each tenant's release)."""

from __future__ import annotations

import logging

from ccp.extensions import get_queue

LOCK_S = 1800  # how long an `advance` waits for another's lock (a wave start plans each tenant in turn)
# The lock's time to live, renewed before each tenant a wave start plans (one plan is bounded by the agent
# timeouts): a worker killed while it holds the lock blocks its rollout for at most this long, not LOCK_S.
LOCK_TTL_S = 120
log = logging.getLogger(__name__)


def advance_later(rollout_id: int) -> None:
    """Queue `advance` for a rollout (the job serialises itself on a Redis lock). Raises when Redis is down."""
    get_queue().enqueue("ccp.jobs.advance_rollout", rollout_id, job_timeout=LOCK_S + 60,
                        description=f"advance rollout #{rollout_id}")


def upgrade_ended(upgrade) -> None:
    """An upgrade reached a final status: if it belongs to a rollout, let the rollout move on (housekeeping
    advances a stalled rollout if Redis was down just now)."""
    if upgrade.rollout_id is None:
        return
    try:
        advance_later(upgrade.rollout_id)
    except Exception:  # noqa: BLE001 - housekeeping advances stalled rollouts
        log.warning("could not queue rollout %s after upgrade %s ended", upgrade.rollout_id, upgrade.id)
