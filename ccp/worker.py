"""The RQ worker, run inside the Flask app context (`ccp worker`).

We use RQ's SimpleWorker (jobs run in the worker process, no fork per job): the job shares the app's engine and
connection pool safely, and a worker killed with SIGKILL takes its job with it, so a dead job is always detected
through its stale heartbeat (see ccp.services.reaper) instead of an orphaned work horse carrying on unseen.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from rq import Queue, SimpleWorker

from ccp.extensions import get_redis, worker_queues
from ccp.services.agent_updates import end_lost_jobs
from ccp.services.reaper import reap_interrupted
from ccp.services.notify import collect_ended
from ccp.services.rollouts import nudge_stalled
from ccp.services.scan_runs import end_stale_runs
from ccp.services.schedules import run_due

log = logging.getLogger(__name__)
HOUSEKEEPING_INTERVAL_S = 20.0


class AppWorker(SimpleWorker):
    """A SimpleWorker that runs every job inside the app context and runs periodic housekeeping."""

    def __init__(self, *args, app: Flask, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.app = app

    def execute_job(self, job, queue):
        with self.app.app_context():
            try:
                return super().execute_job(job, queue)
            finally:
                from ccp.extensions import db

                db.session.remove()


def run_worker(app: Flask, *, burst: bool = False, name: str | None = None, queues: tuple[str, ...] = ()) -> bool:
    """Work the named queues (default: the CCP queue, then its background queue of scans) until stopped, or until
    empty with burst.

    Returns whether any job was processed.
    """
    with app.app_context():
        connection = get_redis()
        listen = [Queue(q, connection=connection) for q in queues] if queues else worker_queues()
    stop = threading.Event()
    housekeeping = threading.Thread(target=_housekeeping, args=(app, stop), daemon=True, name="ccp-housekeeping")
    housekeeping.start()
    try:
        worker = AppWorker(listen, connection=connection, app=app, name=name)
        return worker.work(burst=burst, logging_level="INFO")
    finally:
        stop.set()


def _housekeeping(app: Flask, stop: threading.Event, interval_s: float = HOUSEKEEPING_INTERVAL_S) -> None:
    """Mark upgrades whose job died as interrupted, move on rollouts whose last event was lost, start the scans
    whose schedule is due, end scan runs a killed job left open, and queue notifications of upgrades and rollouts
    that ended (every `interval_s`)."""
    while not stop.is_set():
        for chore in (reap_interrupted, nudge_stalled, run_due, end_stale_runs, collect_ended, end_lost_jobs):
            try:
                with app.app_context():
                    chore()
            except Exception:  # noqa: BLE001 - housekeeping must never kill the worker; one chore, not all
                log.exception("housekeeping: %s failed", chore.__name__)
        stop.wait(interval_s)
