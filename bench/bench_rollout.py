"""How long a rollout takes and where the time goes: N tenants on real agent processes (loopback, dry-run runtime
whose pull and up each take --sleep seconds), rolled out in waves by W `ccp worker` processes, for each W asked.

Per run it prints the wall time against the ideal under W workers (the sum over waves of ceil(wave / W) times what
the canary, alone, took from queued to done), the median upgrade time, what of it is beyond the simulated compose time
(rendering, planning, agent round trips, the dry-run runtime's process starts, verify, bookkeeping) and CCP's own part
(all but the pull, up and verify steps), how long each wave took to start all its upgrades, and the gap between a
wave's last upgrade ending and the next wave's first upgrade being queued.
CCP on PostgreSQL when CCP_BENCH_POSTGRES_URL (or CCP_TEST_POSTGRES_URL) is set (a scratch database, dropped after),
else SQLite; Redis from REDIS_URL (required: the workers are separate processes).

Goals (issue #17): wall time <= 1.2x the ideal with any W, CCP's own part per tenant <= 0.3 s (median), gap between
waves <= 0.2 s.

    REDIS_URL=redis://127.0.0.1:6379/0 python3 bench/bench_rollout.py [--tenants 40] [--wave 10] \
        [--workers 1,2,4] [--sleep 1] [--agents 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scan import _add_tenants, scratch_database, stop_all  # noqa: E402 - the same fleet and database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--wave", type=int, default=10, help="wave size (the canary wave is 1 tenant)")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts, one rollout each")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each simulated pull and up take")
    parser.add_argument("--agents", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("REDIS_URL is required (the workers are separate processes)")
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="ccp-bench-rollout-"))
    db_url, drop_database = scratch_database(tmp)
    env = {**os.environ, "CCP_ENV": "testing", "DATABASE_URL": db_url, "CCP_INSTANCE_DIR": str(tmp / "instance"),
           "CCP_QUEUE": f"ccp-bench-{uuid.uuid4().hex[:8]}", "CCP_MONITOR_WINDOW_S": "0",
           "DRY_RUN_COMPOSE_SLEEP": f"{args.sleep:g}"}
    os.environ.update(env)
    from ccp.app import create_app
    from ccp.extensions import db, worker_queues
    from ccp.services.instances import create_instance
    from tests import tenants

    app = create_app({"environ": env})
    agents: list[subprocess.Popen] = []
    rows = []
    try:
        with app.app_context():
            from flask_migrate import upgrade

            upgrade(directory=str(ROOT / "migrations"))
            _add_tenants(tmp, 0, args.tenants, args.agents, env, agents, create_instance, tenants)
            for n, workers in enumerate(counts):
                rows.append(_one_rollout(f"v{n + 2}", workers, args, env, tmp, db))
                print(_format([rows[-1]], header=n == 0), flush=True)
            for queue in worker_queues():
                queue.empty()
    finally:
        stop_all(agents)
        with app.app_context():
            db.engine.dispose()
        drop_database()
    print(f"\n{args.tenants} tenants, canary 1 then waves of {args.wave}, simulated pull and up {args.sleep:g} s "
          f"each, {args.agents} agent processes, {'SQLite' if db_url.startswith('sqlite') else 'PostgreSQL'}, load "
          f"{os.getloadavg()[0]:.1f}; worker logs in {tmp}")
    base = rows[0]["wall"] if rows and rows[0]["workers"] == 1 else None
    if base:
        for row in rows[1:]:
            print(f"W={row['workers']}: {row['wall'] / base:.2f}x the wall time of W=1")


def _one_rollout(tag: str, workers: int, args, env: dict, tmp: Path, db) -> dict:
    """Start `workers` workers, roll `tag` out to every tenant, wait for the end; the run's figures."""
    from sqlalchemy import select

    from ccp.models import Rollout, Upgrade, as_utc
    from ccp.services.rollouts import start_rollout

    procs = []
    for k in range(workers):
        log = open(tmp / f"worker-{tag}-{k}.log", "wb")  # noqa: SIM115 - kept open for the worker's life
        procs.append(subprocess.Popen([sys.executable, "-m", "ccp.cli", "worker"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
    try:
        time.sleep(3)  # the workers import and connect
        t0 = time.perf_counter()
        rollout = start_rollout(tag, canary=1, wave_size=args.wave, actor="bench")
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            db.session.expire_all()
            rollout = db.session.get(Rollout, rollout.id)
            if rollout.status != "running":
                break
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        if rollout.status != "succeeded":
            raise RuntimeError(f"rollout #{rollout.id} ended {rollout.status}: {rollout.error}")
        ups = list(db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars())
        by_id = {u.instance_id: u for u in ups}
        durations = [(as_utc(u.finished_at) - as_utc(u.started_at)).total_seconds() for u in ups]
        waves = [[by_id[i] for i in wave["instances"]] for wave in rollout.waves]
        # CCP's own part of an upgrade: all of it but the compose steps (pull, up) and verify (the wait for health)
        own = [d - sum(s.duration_s or 0.0 for s in u.steps if s.name in ("pull", "up", "verify"))
               for u, d in zip(ups, durations, strict=True)]
        canary = waves[0][0]  # runs alone: what one tenant takes from queued to done, the ideal's unit
        single = (as_utc(canary.finished_at) - as_utc(canary.created_at)).total_seconds()
        ideal = sum(-(-len(wave) // workers) * single for wave in waves)
        start_spread, gaps = [], []
        for k, wave in enumerate(waves):
            created = [as_utc(u.created_at) for u in wave]
            start_spread.append((max(created) - min(created)).total_seconds())
            if k:
                last_end = max(as_utc(u.finished_at) for u in waves[k - 1])
                gaps.append((min(created) - last_end).total_seconds())
        return {"workers": workers, "tenants": len(ups), "waves": len(waves), "wall": wall, "ideal": ideal,
                "upgrade": statistics.median(durations), "own": statistics.median(own),
                "ccp_share": statistics.median(d - 2 * args.sleep for d in durations),
                "start_spread": statistics.median(start_spread), "gap": statistics.median(gaps) if gaps else 0.0,
                "gap_max": max(gaps) if gaps else 0.0}
    finally:
        stop_all(procs, wait_s=20)


def _format(rows: list[dict], header: bool) -> str:
    cols = ("workers", "tenants", "waves", "wall s", "ideal s", "wall/ideal", "upgrade s (median)",
            "beyond compose s (median)", "CCP own s (median)", "wave start spread s (median)",
            "gap between waves s (median / max)")
    lines = ["  ".join(cols)] if header else []
    for r in rows:
        cells = (r["workers"], r["tenants"], r["waves"], f"{r['wall']:.1f}", f"{r['ideal']:.1f}",
                 f"{r['wall'] / r['ideal']:.2f}x", f"{r['upgrade']:.2f}", f"{r['ccp_share']:.2f}", f"{r['own']:.2f}",
                 f"{r['start_spread']:.2f}", f"{r['gap']:.2f} / {r['gap_max']:.2f}")
        lines.append("  ".join(str(c).ljust(len(h)) for c, h in zip(cells, cols, strict=True)))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
