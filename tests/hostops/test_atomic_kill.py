"""Atomicity: SIGKILL a writer at random moments during a 14-file write; recovery leaves all-old or all-new."""
import random
import signal
import subprocess
import sys
import time

from ccp.hostops.tenant import TenantHost

N_FILES = 14
KILLS = 100
WRITER = r"""
import sys
from ccp.hostops.tenant import TenantHost
host = TenantHost(sys.argv[1], "acme", state_dir=sys.argv[2])
files = {f"conf/f{i:02d}.conf": {"content": ("new %d\n" % i) * 20000, "expect_sha256": None} for i in range(14)}
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
host.write_files(files, fence=1)
sys.stdout.write("done\n"); sys.stdout.flush()
"""


def _old(i):
    return f"old {i}\n" * 20000


def _new(i):
    return f"new {i}\n" * 20000


def _reset(root):
    (root / "conf").mkdir(parents=True, exist_ok=True)
    for i in range(N_FILES):
        (root / "conf" / f"f{i:02d}.conf").write_text(_old(i))


def _run_writer(root, state, delay):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(state)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    started = time.monotonic()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    if delay is None:
        assert proc.stdout.readline() == "done\n"
        proc.wait(10)
        return time.monotonic() - started
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return proc.returncode


def test_sigkill_during_write_set_is_all_old_or_all_new(tmp_path):
    root, state = tmp_path / "tenant", tmp_path / "state"
    _reset(root)
    duration = _run_writer(root, state, None)  # calibrate: how long one full write takes
    rng = random.Random(1234)
    outcomes = {"old": 0, "new": 0}
    for _ in range(KILLS):
        _reset(root)
        _run_writer(root, state, rng.uniform(0, duration * 1.1))
        TenantHost(root, "acme", state_dir=state).recover()
        contents = [(root / "conf" / f"f{i:02d}.conf").read_text() for i in range(N_FILES)]
        if all(c == _old(i) for i, c in enumerate(contents)):
            outcomes["old"] += 1
        else:
            assert all(c == _new(i) for i, c in enumerate(contents)), "half-applied write set after recovery"
            outcomes["new"] += 1
        assert not list(root.rglob(".*.ccp-*")), "temp files left behind"
    # the kills must actually land inside the write, on both sides of the commit point
    assert outcomes["old"] > 5 and outcomes["new"] > 5, outcomes
