"""Render-time benchmark: cold (empty caches) vs warm whole-set render per template set.

Run:  python3 bench/bench_render.py [--repeat 200]
Goal (issue 4): a warm render of the whole default set takes <= 10 ms. Prints a table; exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from ccp.rendering import render as render_module
from ccp.rendering import sets as sets_module
from ccp.rendering.instance_file import load_instance_file
from ccp.rendering.render import render_instance

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "rendering" / "samples"
WARM_GOAL_MS = 10.0


def _clear_caches() -> None:
    render_module._environments.clear()
    render_module._static_cache.clear()
    sets_module._manifest_cache.clear()


def _time_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def bench(sample: str, repeat: int) -> dict:
    """Cold = first render after clearing compiled-template caches (median of 5); warm = median/p95 of ``repeat``."""
    instance, secrets = load_instance_file(SAMPLES / f"{sample}.toml")

    def once():
        return render_instance(instance, secrets=secrets)

    cold = []
    for _ in range(5):
        _clear_caches()
        cold.append(_time_ms(once))
    once()
    warm = sorted(_time_ms(once) for _ in range(repeat))
    result = once()
    return {
        "sample": sample, "set": f"{result.set_name} {result.set_version}", "files": len(result.files),
        "bytes": sum(len(c) for c in result.files.values()), "cold": statistics.median(cold),
        "warm": statistics.median(warm), "p95": warm[int(len(warm) * 0.95) - 1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    rows = [bench(sample, args.repeat) for sample in ("provisioned", "registered")]
    header = f"{'tenant':<12} {'set':<14} {'files':>5} {'bytes':>7} {'cold ms':>8} {'warm ms':>8} {'warm p95':>8} " \
             f"{'ms/file':>7} {'goal':>8}"
    print(header)
    print("-" * len(header))
    ok = True
    for r in rows:
        passed = r["warm"] <= WARM_GOAL_MS
        ok &= passed
        print(f"{r['sample']:<12} {r['set']:<14} {r['files']:>5} {r['bytes']:>7} {r['cold']:>8.2f} {r['warm']:>8.2f} "
              f"{r['p95']:>8.2f} {r['warm'] / r['files']:>7.3f} {'<=10 ' + ('ok' if passed else 'MISS'):>8}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
