"""The skip-or-fail policy shared by the e2e (Docker) and browser tiers.

Locally a missing tool skips its tier with the reason. In CI (CI=true) the tier must run, so it fails loudly,
unless .ci/run set the tier's *_SKIP_REASON variable because its set-up script reported why it cannot work here.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when running under CI (CI=1/true/yes)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def mark_tier(items, folder, marker) -> None:
    """Give every collected test under `folder` the tier's marker (so `-m e2e` / `-m browser` select them)."""
    for item in items:
        try:
            item.path.resolve().relative_to(folder)
        except ValueError:
            continue
        item.add_marker(marker)


def tier_unavailable(tier: str, reason: str, *, skip_env: str, fix: str):
    """Skip (locally, or when CI deliberately set `skip_env`) or fail loudly (CI). Never returns."""
    deliberate = os.environ.get(skip_env, "").strip()
    if deliberate:
        pytest.skip(f"{skip_env}: {deliberate} (check said: {reason})")
    if in_ci():
        pytest.fail(
            f"{tier.upper()} TIER UNAVAILABLE IN CI: {reason}. This tier must run in CI; {fix} "
            f"(set {skip_env} only when that script reported why it cannot work).",
            pytrace=False,
        )
    pytest.skip(f"{tier} tier unavailable: {reason} ({fix})")
