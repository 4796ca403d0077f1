"""Benchmark: CCP "Upgrade to Release" apply wall time vs raw `docker compose pull && up -d && ps` on one real tenant.

Needs the e2e tier (real Docker + registry 127.0.0.1:5055 + test images: `bash .ci/docker-up.sh`). Builds its own
CCP app (temp SQLite, REDIS_URL or embedded Redis), one tenant from tests/e2e/sets/e2e-web (web + sidecar, health
checks every 1 s) served by a real agent thread on 127.0.0.1 (signed HTTP, `docker compose` autodetected), then runs
alternating rounds v1 -> v2 -> v1 ... (each round does one CCP apply and one raw apply, order swapped every round):

  raw        set IMAGE_TAG in .env (untimed), then time: docker compose pull; docker compose up -d; docker compose ps
  raw+health the same, then poll `compose ps` (0.1 s) until every service is running/healthy and the page answers
             with the new version: what "verify" establishes, so CCP's own overhead is CCP vs this line
  ccp        start_release(tag) + the job (render, check_plan, write, env_patch, pull, up, verify), monitor window 0

    python3 bench/bench_apply.py [--rounds 6] [--via job|worker] [--poll SECONDS]

--via job runs ccp.services.runner.run_upgrade in-process (the job body); --via worker runs the real RQ worker in
burst mode (adds worker start-up and RQ bookkeeping). --poll overrides ccp.services.verify.POLL_MAX_S for the run (to
measure a proposed fix without editing code). Prints a table with medians and the ratios to raw and to raw+health
(goal: CCP <= 1.10x raw+health, the same work), and the median duration of each CCP step.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import upgrade_helpers as uh  # noqa: E402

GOAL = 1.10  # CCP's apply against raw pull + up + the wait until healthy and serving


def _set_tag(env_file: Path, tag: str) -> None:
    lines = env_file.read_text().splitlines(keepends=True)
    out = [f"IMAGE_TAG={tag}\n" if line.startswith("IMAGE_TAG=") else line for line in lines]
    assert out != lines or f"IMAGE_TAG={tag}\n" in lines, "no IMAGE_TAG line"
    env_file.write_text("".join(out))


def raw_apply(t: uh.RealTenant, tag: str) -> tuple[float, float]:
    """Returns (seconds for pull+up+ps, seconds until also healthy and serving `tag`)."""
    _set_tag(t.install_dir / ".env", tag)
    t0 = time.perf_counter()
    for args in (("pull",), ("up", "-d", "--remove-orphans"), ("ps", "--all", "--format", "json")):
        proc = t.compose(*args, timeout=180)
        if proc.returncode != 0:
            raise SystemExit(f"docker compose {' '.join(args)} failed: {proc.stderr[-500:]}")
    raw = time.perf_counter() - t0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        proc = t.compose("ps", "--all", "--format", "json", timeout=30)
        import json

        rows = [json.loads(x) for x in proc.stdout.splitlines() if x.strip().startswith("{")]
        if rows and all(r.get("State") == "running" and r.get("Health") in ("", "healthy") for r in rows) \
                and uh.page_version(t.url, 2) == tag:
            return raw, time.perf_counter() - t0
        time.sleep(0.1)
    raise SystemExit(f"raw apply of {tag}: not healthy within 120 s")


def ccp_apply(app, inst_id: int, tag: str, via: str) -> tuple[float, dict[str, float]]:
    from ccp.extensions import db
    from ccp.models import Instance, Upgrade
    from ccp.services import upgrades

    with app.app_context():
        inst = db.session.get(Instance, inst_id)
        t0 = time.perf_counter()
        upgrade = upgrades.start_release(inst, tag, actor="bench")
        if via == "worker":
            from ccp.worker import run_worker

            run_worker(app, burst=True)
        else:
            from ccp.services.runner import run_upgrade

            run_upgrade(upgrade.id)
        took = time.perf_counter() - t0
        db.session.expire_all()
        upgrade = db.session.get(Upgrade, upgrade.id)
        if upgrade.status != "succeeded":
            raise SystemExit(f"CCP apply of {tag} ended {upgrade.status}: {upgrade.error}")
        steps = {s.name: s.duration_s for s in upgrade.steps if s.duration_s is not None}
        db.session.remove()
    return took, steps


def make_app(base: Path):
    from flask_migrate import upgrade as migrate_upgrade

    from ccp.app import create_app

    environ = {
        "CCP_ENV": "testing", "DATABASE_URL": f"sqlite:///{base / 'ccp.db'}",
        "CCP_INSTANCE_DIR": str(base / "instance"),
        "CCP_QUEUE": f"ccp-bench-{uuid.uuid4().hex[:8]}", "CCP_TEMPLATE_SETS_DIR": str(uh.SETS_DIR),
        "CCP_MONITOR_WINDOW_S": "0", "CCP_STEP_DEADLINE_S": "120",
    }
    if os.environ.get("REDIS_URL"):
        environ["REDIS_URL"] = os.environ["REDIS_URL"]
    app = create_app({"environ": environ})
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with app.app_context():
            migrate_upgrade()
    finally:
        os.chdir(cwd)
    return app


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6, help="rounds; each does one CCP and one raw apply (default 6)")
    ap.add_argument("--via", choices=("job", "worker"), default="job")
    ap.add_argument("--poll", type=float, default=None, help="override ccp.services.verify.POLL_MAX_S (seconds)")
    ap.add_argument("--hc-interval", default="1s",
                    help="the tenant's healthcheck interval (docker's first probe runs one interval after start)")
    args = ap.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)  # werkzeug request lines from the agent thread
    import ccp.services.verify as verify

    if args.poll is not None:
        verify.POLL_MAX_S = args.poll
    base = Path(tempfile.mkdtemp(prefix="ccp-bench-apply-"))
    app = make_app(base)
    from ccp.extensions import db
    from ccp.services.instances import create_instance

    t = uh.make_real_tenant(base, extra_vars={"HEALTHCHECK_INTERVAL": args.hc_interval})
    try:
        with app.app_context():
            inst_id = create_instance(uh.instance_data(t), actor="bench").id
            db.session.remove()
        t.up()
        uh.wait_healthy(t.install_dir, t.project)
        uh.wait_page(t.url, "v1")
        # warm-up (untimed): one apply each way so both paths start from the same cached state
        ccp_apply(app, inst_id, "v2", args.via)
        raw_apply(t, "v1")

        raw_s, raw_health_s, ccp_s, steps_all = [], [], [], []
        op = 0
        for r in range(args.rounds):
            order = ("ccp", "raw") if r % 2 == 0 else ("raw", "ccp")
            for method in order:
                tag = "v2" if op % 2 == 0 else "v1"
                op += 1
                if method == "ccp":
                    took, steps = ccp_apply(app, inst_id, tag, args.via)
                    ccp_s.append(took)
                    steps_all.append(steps)
                    assert uh.page_version(t.url) == tag
                else:
                    a, b = raw_apply(t, tag)
                    raw_s.append(a)
                    raw_health_s.append(b)
                print(f"  round {r + 1} {method:3} -> {tag}: "
                      f"{(ccp_s[-1] if method == 'ccp' else raw_s[-1]):.2f}s", flush=True)
    finally:
        t.agent.stop()
        t.down()

    med_raw = statistics.median(raw_s)
    rows = [("raw: compose pull && up -d && ps", raw_s),
            ("raw + wait until healthy & serving", raw_health_s),
            (f"CCP apply (--via {args.via}, monitor window 0)", ccp_s)]
    import subprocess

    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                            timeout=20).stdout.strip()
    print(f"\nbench_apply: e2e-web tenant (web + sidecar, healthcheck interval {args.hc_interval}), "
          f"{args.rounds} rounds, "
          f"engine {engine}, verify.POLL_MAX_S={verify.POLL_MAX_S}, {os.cpu_count()} CPUs")
    print(f"{'method':44} {'n':>2} {'median':>7} {'min':>6} {'max':>6} {'ratio':>6}")
    for name, values in rows:
        print(f"{name:44} {len(values):>2} {statistics.median(values):>6.2f}s {min(values):>5.2f}s "
              f"{max(values):>5.2f}s {statistics.median(values) / med_raw:>5.2f}x")
    ratio = statistics.median(ccp_s) / med_raw
    # CCP must wait until the tenant is healthy (that is its verify step); raw pull+up+ps does not. The time CCP
    # adds on top of the same work is CCP - (raw + wait until healthy); its overhead ratio puts that on raw's time.
    added = statistics.median(ccp_s) - statistics.median(raw_health_s)
    overhead = (med_raw + added) / med_raw
    print(f"\nCCP / raw = {ratio:.2f}x, of which waiting for health (raw+health - raw) "
          f"{statistics.median(raw_health_s) - med_raw:.2f}s is work raw does not do")
    against_health = statistics.median(ccp_s) / statistics.median(raw_health_s)
    print(f"CCP adds {added:.2f}s over the same work: overhead ratio (raw + added) / raw = {overhead:.2f}x;  "
          f"CCP / raw+health = {against_health:.2f}x (goal <= {GOAL}x, issue #17): "
          f"{'MET' if against_health <= GOAL else 'MISSED'}")
    names = [n for n in ("render", "check_plan", "write", "env_patch", "pull", "up", "verify")
             if any(n in s for s in steps_all)]
    print("CCP step medians: " + ", ".join(
        f"{n} {statistics.median([s[n] for s in steps_all if n in s]):.2f}s" for n in names))
    other = statistics.median([c - sum(s.values()) for c, s in zip(ccp_s, steps_all, strict=True)])
    print(f"CCP outside steps (enqueue, claim, agent health, DB): {other:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
