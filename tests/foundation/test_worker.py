"""RQ against real Redis: a `ccp worker` process runs jobs enqueued by the web process, in the app context."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ccp.extensions import get_queue


def test_burst_worker_runs_job_in_app_context(app, run_worker):
    job = get_queue().enqueue("ccp.jobs.ping", "hello")
    run_worker()
    job.refresh()
    assert job.get_status() == "finished"
    assert job.return_value() == {"value": "hello", "app": "ccp"}
    assert job.meta["pinged"] is True


def test_ccp_worker_process_runs_job_enqueued_from_web(app, app_env):
    # The "web process" side: enqueue through a request-handling app; the worker is a separate `ccp worker`.
    job = get_queue().enqueue("ccp.jobs.ping", "from-web")
    env = dict(os.environ, **app_env)
    worker = subprocess.Popen([sys.executable, "-m", "ccp.cli", "worker", "--burst"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out
    deadline = time.monotonic() + 10
    while job.get_status(refresh=True) != "finished" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.return_value() == {"value": "from-web", "app": "ccp"}
