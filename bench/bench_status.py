"""Throughput of the polled upgrade status widget vs a bare Flask endpoint, in the same server configuration.

Both apps run under gunicorn with the same settings (1 worker process, N threads, 127.0.0.1); load comes from `wrk`
when installed (apt-get install wrk), else a bounded Python thread loop. The status endpoint is measured as htmx
polls it: logged-in session cookie, HX-Request header, a running upgrade with 7 recorded steps. Goal: >= 60% of the
bare endpoint's requests per second.

Every request of the load carries the User-Agent the session logged in with: the app's session protection
("strong") binds a session to client address + User-Agent, and wrk sends no User-Agent of its own, so without it
every status request was answered by a cheap redirect to the login page (which wrk counts as a success). Before and
after the load, a request with exactly the load's headers must answer 200 with the running widget.

The machine may be busy with other work, so the two endpoints are measured in alternating rounds (bare, status,
bare, status, ...) against the same two servers, and the report gives every round and the median.

The upgrade does not change during the load, as between most polls of a real one: CCP serves those polls from the
widget it last rendered until a change notice arrives over Redis (ccp.web.polling.PollCache, whose docstring keeps what
each kind of reuse buys here). `--reuse-s 0` sets CCP_STATUS_REUSE_S=0, so every poll reads the database and
renders: the cost of the polls that follow a change.

    python3 bench/bench_status.py [--seconds 10] [--runs 3] [--threads 4] [--connections 8] [--reuse-s 0]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = '''
from flask import Flask
app = Flask(__name__)

@app.get("/ping")
def ping():
    return "<section id='upgrade-status'>ok</section>"
'''
SEED = '''
from datetime import timedelta
from ccp.app import create_app
from ccp.extensions import db
from ccp.models import Upgrade, UpgradeStep, utcnow
from ccp.services.instances import create_instance
from ccp.services.users import create_user
app = create_app()
with app.app_context():
    create_user("bench", "bench-password-123", "operator")
    inst = create_instance({"slug": "bench", "name": "Bench", "driver": "local", "install_dir": "/srv/bench",
                            "image_tag": "v1", "domain": "bench.example.com"}, actor="bench")
    now = utcnow()
    up = Upgrade(instance_id=inst.id, kind="release", status="running", from_tag="v1", to_tag="v2", actor="bench",
                 started_at=now)
    db.session.add(up)
    db.session.flush()
    names = ["render", "check_plan", "write", "env_patch", "pull", "up", "verify"]
    for i, name in enumerate(names):
        done = i < 5
        db.session.add(UpgradeStep(upgrade_id=up.id, position=i, name=name,
                                   status="succeeded" if done else ("running" if i == 5 else "pending"),
                                   started_at=now if i <= 5 else None,
                                   finished_at=now + timedelta(seconds=i) if done else None,
                                   output_tail="line of output\\n" * 20 if i == 5 else None))
    db.session.commit()
    print(up.id)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(target: str, env: dict, threads: int, cwd: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", str(threads), "-b", f"127.0.0.1:{port}",
           "--log-level", "warning", target]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/", timeout=10)
            return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"gunicorn {target} did not start within 60 s")


USER_AGENT = "ccp-bench/1"


def load_wrk(url: str, headers: dict, seconds: int, threads: int, connections: int) -> float:
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} error responses\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def load_python(url: str, headers: dict, seconds: int, threads: int, connections: int) -> float:
    count = [0] * connections
    deadline = time.monotonic() + seconds

    def run(i: int) -> None:
        with requests.Session() as s:
            while time.monotonic() < deadline:
                r = s.get(url, headers=headers, timeout=10)
                r.raise_for_status()
                count[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(count) / seconds


def login(url: str) -> str:
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    page = s.get(url + "/login", timeout=5).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    r = s.post(url + "/login", data={"username": "bench", "password": "bench-password-123", "csrf_token": token},
               allow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


def check_widget(url: str, headers: dict) -> None:
    """The status endpoint, asked exactly as the load asks it, answers 200 with the running widget."""
    check = requests.get(url, headers=headers, timeout=5, allow_redirects=False)
    if check.status_code != 200 or 'id="upgrade-status"' not in check.text or "Running" not in check.text:
        raise SystemExit(f"status endpoint does not answer the widget: {check.status_code} {check.text[:300]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads (and load connections / 2)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds; the report gives the median")
    parser.add_argument("--reuse-s", type=float, default=None,
                        help="CCP_STATUS_REUSE_S for the CCP server (0: every poll reads the database)")
    args = parser.parse_args()
    load = load_wrk if shutil.which("wrk") else load_python
    with tempfile.TemporaryDirectory(prefix="ccp-bench-") as tmp:
        tmp_path = Path(tmp)
        env = {**os.environ, "CCP_ENV": "testing", "CCP_INSTANCE_DIR": str(tmp_path / "instance"),
               "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{tmp_path / 'ccp.db'}"),
               "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
        if args.reuse_s is not None:
            env["CCP_STATUS_REUSE_S"] = str(args.reuse_s)
        subprocess.run([sys.executable, "-m", "ccp.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
        upgrade_id = subprocess.run([sys.executable, "-c", SEED], env=env, check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1]
        (tmp_path / "bare_app.py").write_text(BARE_APP)
        procs = []
        try:
            bare, bare_url = start_gunicorn("bare_app:app", env, args.threads, tmp_path)
            procs.append(bare)
            ccp, ccp_url = start_gunicorn("ccp.app:create_app()", env, args.threads, ROOT)
            procs.append(ccp)
            cookie = login(ccp_url)
            status_url = f"{ccp_url}/upgrades/{upgrade_id}/status"
            headers = {"Cookie": cookie, "HX-Request": "true", "User-Agent": USER_AGENT}
            check_widget(status_url, headers)
            load(bare_url + "/ping", headers, 2, 2, args.connections)  # warm-up
            load(status_url, headers, 2, 2, args.connections)
            rounds = []
            for _ in range(args.runs):
                bare_rps = load(bare_url + "/ping", headers, args.seconds, 2, args.connections)
                status_rps = load(status_url, headers, args.seconds, 2, args.connections)
                rounds.append((bare_rps, status_rps))
            check_widget(status_url, headers)  # still the widget (not a redirect, not an error) after the load
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    report(rounds, args, load.__name__, env["DATABASE_URL"].split(":", 1)[0],
           env.get("CCP_STATUS_REUSE_S", "5 (default)"))


def report(rounds: list[tuple[float, float]], args, load_name: str, db_kind: str, reuse: str) -> None:
    """One line per round, then the medians; the verdict uses the median of the per-round ratios."""
    print(f"\nserver: gunicorn -w 1 --threads {args.threads} on 127.0.0.1; load: {load_name} "
          f"{args.connections} connections x {args.seconds}s, {len(rounds)} alternating rounds; database: {db_kind}; "
          f"CCP_STATUS_REUSE_S={reuse}")
    print(f"{'round':<8}{'bare GET /ping':>16}{'CCP GET /upgrades/<id>/status (htmx)':>40}{'vs bare':>10}")
    ratios = []
    for i, (bare_rps, status_rps) in enumerate(rounds, 1):
        ratios.append(status_rps / bare_rps)
        print(f"{i:<8}{bare_rps:>16.0f}{status_rps:>40.0f}{ratios[-1]:>10.0%}")
    ratio = statistics.median(ratios)
    print(f"{'median':<8}{statistics.median(r[0] for r in rounds):>16.0f}"
          f"{statistics.median(r[1] for r in rounds):>40.0f}{ratio:>10.0%}")
    print(f"goal >= 60% (median of rounds): {'met' if ratio >= 0.6 else 'NOT met'}")


if __name__ == "__main__":
    main()
