"""Diff benchmark: our unified diff (ccp.hostops.diff) vs GNU `diff -u` (and difflib for reference).

Run: python3 bench/bench_diff.py [--repeat N]

Goals (issues 3 and 17): within 2x of GNU diff on ordinary config files, within 3x on adversarial repetitive files and
on large files of distinct lines (one change in 50,000 lines, dense changes, a whole replacement), never over 1 s.
GNU diff is timed as a process (that is how it would be used); ours in-process, as the agent calls it. Every output
of ours is also checked with GNU `patch`.
"""
from __future__ import annotations

import argparse
import difflib
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ccp.hostops.diff import unified_diff

DIFFLIB_CAP_S = 10


def compose_pair(rng: random.Random, services: int = 60) -> tuple[str, str]:
    """A ~1500-line compose file and its next release: tag bumps, a few env/healthcheck edits, one new service."""
    def service(i, tag, extra_env):
        lines = [f"  svc{i}:", f"    image: registry.example/svc{i}:{tag}", "    restart: unless-stopped",
                 "    env_file: .env", "    environment:"]
        lines += [f"      - SVC{i}_OPT{k}=${{SVC{i}_OPT{k}:-default{k}}}" for k in range(4 + extra_env)]
        lines += ["    volumes:", f"      - ./data/svc{i}:/var/lib/svc{i}", "      - ./config:/config:ro",
                  "    healthcheck:", f"      test: [\"CMD\", \"wget\", \"-qO-\", \"http://localhost:{8000 + i}/\"]",
                  "      interval: 10s", "      timeout: 3s", "      retries: 5", "    labels:",
                  f"      - traefik.http.routers.svc{i}.rule=Host(`svc{i}.example`)", "    networks: [backend]",
                  "    logging:", "      driver: json-file", "      options: {max-size: 10m, max-file: '3'}", ""]
        return lines
    old = ["services:"]
    new = ["services:"]
    for i in range(services):
        old += service(i, "1.4.2", 0)
        changed = rng.random() < 0.1
        new += service(i, "1.5.0" if i % 3 == 0 else "1.4.2", 1 if changed else 0)
    new += service(services, "1.5.0", 0)
    tail = ["networks:", "  backend: {}", "volumes: {}"]
    return "\n".join(old + tail) + "\n", "\n".join(new + tail) + "\n"


def repetitive_pairs(rng: random.Random, n: int = 20000) -> dict[str, tuple[str, str]]:
    """20,000-line pairs made mostly of a handful of repeated lines."""
    vocab = ["  restart: unless-stopped", "", "    - x", "    image: app:${IMAGE_TAG:-latest}", "  web:"]

    def edit(lines, k):
        out = list(lines)
        for _ in range(k):
            i, op = rng.randrange(len(out)), rng.random()
            if op < 0.33:
                del out[i]
            elif op < 0.66:
                out.insert(i, rng.choice(vocab))
            else:
                out[i] = f"changed {i}"
        return out

    rand = [rng.choice(vocab) for _ in range(n)]
    periodic = [vocab[i % len(vocab)] for i in range(n)]
    pairs = {
        "(b1) repeated lines, 400 scattered edits": (rand, edit(rand, 400)),
        "(b2) periodic lines, 400 scattered edits": (periodic, edit(periodic, 400)),
        "(b3) repeated lines, unrelated rewrite": (rand, [rng.choice(vocab) for _ in range(n)]),
        "(b4) two blocks swapped (x*10k+y*10k)": (["x"] * (n // 2) + ["y"] * (n // 2),
                                                  ["y"] * (n // 2) + ["x"] * (n // 2)),
    }
    return {k: ("\n".join(a) + "\n", "\n".join(b) + "\n") for k, (a, b) in pairs.items()}


def large_pairs(rng: random.Random) -> dict[str, tuple[str, str]]:
    """Big files of distinct lines (a log, a generated config): one change, dense changes, a whole replacement."""
    def text(n, salt):
        return [f"{salt}entry {i:06d} value={rng.randrange(10**6)} path=/srv/data/{i % 97}/item" for i in range(n)]

    big = text(50000, "")
    one = list(big)
    one[25000] = "entry 025000 value=changed path=/srv/data/changed/item"
    mid = text(20000, "")
    dense = [f"{line} edited" if i % 5 == 0 else line for i, line in enumerate(mid)]
    pairs = {
        "(c1) 50k distinct lines, one change": (big, one),
        "(c2) 20k distinct lines, every 5th changed": (mid, dense),
        "(c3) 20k distinct lines, wholly replaced": (mid, text(20000, "new ")),
    }
    return {k: ("\n".join(a) + "\n", "\n".join(b) + "\n") for k, (a, b) in pairs.items()}


def _time(fn, repeat):
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), max(samples)


def _difflib_time(old, new):
    def alarm(*_):
        raise TimeoutError
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(DIFFLIB_CAP_S)
    try:
        t = time.perf_counter()
        list(difflib.unified_diff(old.splitlines(True), new.splitlines(True)))
        return f"{time.perf_counter() - t:.4f}"
    except TimeoutError:
        return f">{DIFFLIB_CAP_S}"
    finally:
        signal.alarm(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(20261127)
    cases = {"(a) compose file, next release": (compose_pair(rng), 2.0)}
    cases.update({k: (v, 3.0) for k, v in repetitive_pairs(rng).items()})
    cases.update({k: (v, 3.0) for k, v in large_pairs(rng).items()})
    rows, ok_all = [], True
    with tempfile.TemporaryDirectory() as tmp:
        old_p, new_p, patch_p, out_p = (Path(tmp) / n for n in ("old", "new", "p.diff", "out"))
        for name, ((old, new), goal) in cases.items():
            old_p.write_text(old)
            new_p.write_text(new)
            gnu, _ = _time(lambda: subprocess.run(["diff", "-u", str(old_p), str(new_p)], stdout=subprocess.DEVNULL,
                                                  timeout=60, check=False), args.repeat)
            ours, worst = _time(lambda old=old, new=new: unified_diff(old, new, old_label="a/f", new_label="b/f",
                                                     limit_bytes=1 << 30), args.repeat)
            result = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=1 << 30)
            patch_p.write_text(result.text)
            subprocess.run(["patch", "-s", "-o", str(out_p), str(old_p), str(patch_p)], check=True, timeout=60)
            correct = out_p.read_text() == new
            ratio = ours / gnu
            ok = correct and ratio <= goal and worst < 1.0
            ok_all &= ok
            rows.append((name, len(old.splitlines()), f"{gnu:.4f}", f"{ours:.4f}", f"{worst:.4f}",
                         f"{ratio:.2f}x", f"<={goal:.0f}x", _difflib_time(old, new), "yes" if correct else "NO",
                         "ok" if ok else "MISSED"))
    header = ("case", "lines", "gnu diff -u s", "ours s (median)", "ours worst s", "ours/gnu", "goal",
              "difflib s", "patch ok", "result")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
