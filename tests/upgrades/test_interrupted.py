"""A worker killed with SIGKILL mid-upgrade: the upgrade is marked interrupted, the lock released, never re-run."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

from ccp.models import Upgrade
from ccp.services import upgrades
from ccp.services.reaper import reap_interrupted
from tests.tenants import FAKE_COMPOSE


def test_killed_worker_marks_upgrade_interrupted(app, app_env, tenant, db):
    upgrade = upgrades.start_release(tenant, "v2", actor="t")
    env = dict(os.environ, **app_env, CCP_LOCAL_COMPOSE_COMMAND=shlex.join(FAKE_COMPOSE), DRY_RUN_COMPOSE_SLEEP="60")
    worker = subprocess.Popen([sys.executable, "-m", "ccp.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            db.session.expire_all()
            step = next((s for s in db.session.get(Upgrade, upgrade.id).steps if s.name == "pull"), None)
            if step is not None and step.status == "running":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the upgrade never reached the pull step")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    # Within the stale window nothing is reaped: a live job with a fresh heartbeat is never touched.
    assert reap_interrupted() == []
    app.config["CCP"].heartbeat_stale_s = 1
    time.sleep(1.5)
    assert reap_interrupted() == [upgrade.id]
    db.session.expire_all()
    upgrade = db.session.get(Upgrade, upgrade.id)
    assert upgrade.status == "interrupted"
    assert "state unknown" in upgrade.instance.attention
    assert {s.name: s.status for s in upgrade.steps}["pull"] == "failed"
    # The lock is released: a new upgrade can start; the interrupted one is not re-run.
    again = upgrades.start_release(upgrade.instance, "v2", actor="t")
    assert again.status == "queued"
    assert reap_interrupted() == []


def test_default_settings_detect_within_120_seconds():
    from ccp.config import Settings
    from ccp.worker import HOUSEKEEPING_INTERVAL_S

    assert Settings().heartbeat_stale_s + HOUSEKEEPING_INTERVAL_S <= 120
