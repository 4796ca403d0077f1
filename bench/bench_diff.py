"""Diff benchmark: our unified diff (ccp.hostops.diff) vs GNU `diff -u` (and difflib for reference).

Run: python3 bench/bench_diff.py [--repeat N] [--only TEXT]

Goals (issues 3 and 17): within 2x of GNU diff on ordinary config files, within 3x on every adversarial shape, never
over 1 s: repetitive files, large files of distinct lines (one change in 50,000 lines, dense changes, a whole
replacement), long lines (2-20 kB, a 1 MB single line, 50-100 kB minified lines), CRLF (throughout, LF -> CRLF,
mixed endings), missing final newlines, identical lines, reordered lines, binary-ish bytes with NULs, 1M tiny lines
and rewrites at the agent's 4 MB file limit.
GNU diff is timed as a process (that is how it would be used), `diff -a -u` so that it diffs binary-ish files too;
ours in-process, as the agent calls it; the two alternately. Files are written and compared as bytes (a CR is part
of its line), and every output of ours is checked with GNU `patch`.
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

DIFFLIB_CAP_S = 3
GNU_SLOW_S = 2


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


def _lines(rng: random.Random, n: int, salt: str = "") -> list[str]:
    return [f"{salt}entry {i:06d} value={rng.randrange(10**6)} path=/srv/data/{i % 97}/item" for i in range(n)]


def _join(lines, eol: str = "\n", final: bool = True) -> str:
    return eol.join(lines) + (eol if final else "")


def long_line_pairs(rng: random.Random) -> dict[str, tuple[str, str]]:
    """Long lines: 2-20 kB lines with a few one-character edits, a minified 1 MB one-line file changed in one
    character, and a bundle of 50-100 kB lines (minified JS/JSON-like) with a few lines edited."""
    def blob(size):
        return "".join(rng.choice('abcdefghij{}[]:,"0123456789 ') for _ in range(size))

    long = [blob(rng.randrange(2000, 20000)) for _ in range(300)]
    long_new = list(long)
    for i in rng.sample(range(300), 10):
        k = rng.randrange(len(long_new[i]))
        long_new[i] = long_new[i][:k] + "#" + long_new[i][k + 1:]
    one = '{"data":[' + ",".join(f'{{"id":{i},"name":"item{i}","v":{rng.randrange(10**6)}}}' for i in range(25000))
    one = one[:1 << 20] + "]}"
    mid = len(one) // 2
    bundle = [blob(rng.randrange(50000, 100000)) for _ in range(40)]
    bundle_new = list(bundle)
    for i in rng.sample(range(40), 5):
        bundle_new[i] = bundle_new[i][:1000] + "/*patched*/" + bundle_new[i][1000:]
    return {
        "(d1) 300 lines of 2-20 kB, 10 one-char edits": (_join(long), _join(long_new)),
        "(d2) 1 MB single line, one char changed, no EOL": (one, one[:mid] + "X" + one[mid + 1:]),
        "(d3) 40 lines of 50-100 kB, 5 edited": (_join(bundle), _join(bundle_new)),
    }


def line_ending_pairs(rng: random.Random) -> dict[str, tuple[str, str]]:
    """CRLF files (a CR stays part of its line, as in GNU diff): CRLF throughout with dense edits, a whole file
    converted LF -> CRLF, mixed endings with some flipped; non-ASCII text (2- and 4-byte characters, which Python
    stores wider); files without a final newline."""
    mid = _lines(rng, 20000)
    dense = [f"{line} edited" if i % 5 == 0 else line for i, line in enumerate(mid)]
    mixed = [line + ("\r" if rng.random() < 0.5 else "") for line in mid]
    flipped = list(mixed)
    for i in rng.sample(range(20000), 200):
        flipped[i] = flipped[i][:-1] if flipped[i].endswith("\r") else flipped[i] + "\r"
    big = _lines(rng, 50000)
    scattered = list(mid)
    for i in rng.sample(range(19999), 100):
        scattered[i] += " edited"
    scattered[-1] += " last"
    cyrillic = [f"значение {i:06d} = {rng.randrange(10**6)} путь/{i % 97}/элемент" for i in range(20000)]
    cyrillic_new = [f"{line} изменено" if i % 5 == 0 else line for i, line in enumerate(cyrillic)]
    emoji = [f"😀 entry {i:06d} value={rng.randrange(10**6)} ✓ path/{i % 97}" for i in range(20000)]
    emoji_new = [f"{line} 🔧" if i % 5 == 0 else line for i, line in enumerate(emoji)]
    return {
        "(e1) 20k CRLF lines, every 5th changed": (_join(mid, "\r\n"), _join(dense, "\r\n")),
        "(e2) 20k lines, LF -> CRLF throughout": (_join(mid), _join(mid, "\r\n")),
        "(e3) 20k mixed-ending lines, 200 endings flipped": (_join(mixed), _join(flipped)),
        "(e4) 20k non-ASCII lines (Cyrillic), every 5th changed": (_join(cyrillic), _join(cyrillic_new)),
        "(e5) 20k lines with emoji, every 5th changed": (_join(emoji), _join(emoji_new)),
        "(f1) 50k lines, final newline removed": (_join(big), _join(big, final=False)),
        "(f2) 20k lines, no final EOL, 100 edits + last": (_join(mid, final=False), _join(scattered, final=False)),
    }


def other_pairs(rng: random.Random) -> dict[str, tuple[str, str]]:
    """More adversarial shapes: identical lines with one insertion, every line reordered (reversed, shuffled),
    binary-ish bytes with NULs (decoded as the agent decodes a file: UTF-8 with replacement), tiny lines."""
    same = ["    - x"] * 20000
    distinct = _lines(rng, 20000)
    shuffled = list(distinct)
    rng.shuffle(shuffled)
    raw = bytearray(rng.randbytes(1 << 20))
    raw_new = bytearray(raw)
    for i in rng.sample(range(len(raw)), 100):
        raw_new[i] = rng.randrange(256)
    tiny = [rng.choice("ab") for _ in range(1_000_000)]
    tiny_new = list(tiny)
    for i in rng.sample(range(len(tiny)), 100):
        tiny_new[i] = "c"
    return {
        "(g1) 20k identical lines, one inserted mid-file": (_join(same),
                                                            _join(same[:10000] + ["    - y"] + same[10000:])),
        "(g2) 20k distinct lines, order reversed": (_join(distinct), _join(distinct[::-1])),
        "(g3) 20k distinct lines, shuffled": (_join(distinct), _join(shuffled)),
        "(g4) 1 MB random bytes with NULs, 100 changed": (raw.decode("utf-8", "replace"),
                                                          raw_new.decode("utf-8", "replace")),
        "(g5) 1M one-char lines, 100 changed": (_join(tiny), _join(tiny_new)),
    }


def huge_pairs(rng: random.Random) -> dict[str, tuple[str, str]]:
    """Up to the agent's 4 MB file limit: dense changes, a moved block, a re-indented file of few distinct lines, and
    where GNU diff's O(N*D) search is slowest: rewrites of files with few distinct lines (no line unique to both
    sides to anchor on) and every line of a distinct-line file moved."""
    vocab = ["  restart: unless-stopped", "", "    - x", "    image: app:${IMAGE_TAG:-latest}", "  web:"]
    distinct = _lines(rng, 70000)
    shuffled = list(distinct)
    rng.shuffle(shuffled)
    dense = _lines(rng, 80000)
    block = _lines(rng, 50000)
    yaml_like = [("  " * (i % 4)) + f"k{i % 50}: v{i % 13}" for i in range(100_000)]
    return {
        "(c4) 80k distinct lines (4 MB), every 2nd changed": (_join(dense), _join(
            f"{line} edited" if i % 2 == 0 else line for i, line in enumerate(dense))),
        "(g6) 50k distinct lines, a 10k block moved to the end": (_join(block), _join(block[10000:] + block[:10000])),
        "(g7) 100k YAML-like lines, every 3rd re-indented": (_join(yaml_like), _join(
            "  " + line if i % 3 == 0 else line for i, line in enumerate(yaml_like))),
        "(h1) 1M one-char lines (4 MB), unrelated rewrite": (_join(rng.choice("ab") for _ in range(1_000_000)),
                                                              _join(rng.choice("ab") for _ in range(1_000_000))),
        "(h2) 250k repeated lines (4 MB), unrelated rewrite": (_join(rng.choice(vocab) for _ in range(250_000)),
                                                                _join(rng.choice(vocab) for _ in range(250_000))),
        "(h3) 70k distinct lines (3.4 MB), shuffled": (_join(distinct), _join(shuffled)),
        "(h4) 70k distinct lines (3.4 MB), reversed": (_join(distinct), _join(distinct[::-1])),
    }


def _time_pair(gnu_fn, ours_fn, repeat):
    """Median GNU and median + worst ours, taken alternately (one of each per round), so that load from elsewhere
    weighs on both sides alike. GNU is not run again once a run took over GNU_SLOW_S (up to ~30 s on the 4 MB
    rewrites)."""
    gnu, ours = [], []
    for _ in range(repeat):
        for fn, samples in ((gnu_fn, gnu), (ours_fn, ours)):
            if samples is gnu and gnu and max(gnu) > GNU_SLOW_S:
                continue
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
    return statistics.median(gnu), statistics.median(ours), max(ours)


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
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text, e.g. (g")
    args = parser.parse_args()
    rng = random.Random(20261127)
    cases = {"(a) compose file, next release": (compose_pair(rng), 2.0)}
    cases.update({k: (v, 3.0) for k, v in repetitive_pairs(rng).items()})
    cases.update({k: (v, 3.0) for k, v in large_pairs(rng).items()})
    for shapes in (long_line_pairs, line_ending_pairs, other_pairs, huge_pairs):
        cases.update({k: (v, 3.0) for k, v in shapes(rng).items()})
    rows, ok_all = [], True
    with tempfile.TemporaryDirectory() as tmp:
        old_p, new_p, patch_p, out_p = (Path(tmp) / n for n in ("old", "new", "p.diff", "out"))
        for name, ((old, new), goal) in cases.items():
            if args.only not in name:
                continue
            old_p.write_bytes(old.encode())
            new_p.write_bytes(new.encode())
            gnu, ours, worst = _time_pair(
                lambda: subprocess.run(["diff", "-a", "-u", str(old_p), str(new_p)], stdout=subprocess.DEVNULL,
                                       timeout=60, check=False),
                lambda old=old, new=new: unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=1 << 30),
                args.repeat)
            result = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=1 << 30)
            patch_p.write_bytes(result.text.encode())
            applied = subprocess.run(["patch", "-s", "-o", str(out_p), str(old_p), str(patch_p)], timeout=60,
                                     check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            correct = applied.returncode == 0 and out_p.read_bytes() == new.encode()
            ratio = ours / gnu
            ok = correct and ratio <= goal and worst < 1.0
            ok_all &= ok
            rows.append((name, old.count("\n") + (not old.endswith("\n")), f"{gnu:.4f}", f"{ours:.4f}", f"{worst:.4f}",
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
