"""Rollouts in a real browser: start one from the Rollouts page and watch its waves finish without reloading; a broken
tag halts at the canary and the page says why. Jobs run in a real `ccp worker` process (fake compose runtime)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.flows import log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FINISH_TIMEOUT_MS = 90_000


def _start(page, base: str, tag: str, canary: int, wave_size: int) -> None:
    page.goto(base + "/rollouts")
    page.fill("#r-tag", tag)
    page.fill("#r-canary", str(canary))
    page.fill("#r-waveSize", str(wave_size))
    page.click("#rollout-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/rollouts/\d+$"))


def test_start_a_rollout_and_watch_its_waves(page, live_server, app, tenant_factory, worker, operator,
                                             screenshot_dir, blocked_requests):
    for slug in ("alpha", "bravo", "charlie"):
        tenant_factory(slug=slug)
    base = live_server(app)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base, *operator)

    _start(page, base, "v2", canary=1, wave_size=2)
    url = page.url
    page.wait_for_selector("#rollout-progress[data-status=succeeded]", timeout=FINISH_TIMEOUT_MS)
    assert page.url == url  # the progress section replaced itself; the page was not reloaded
    progress = page.locator("#rollout-progress")
    assert "3 of 3 tenants upgraded in 2 waves" in progress.inner_text()
    expect(progress.locator("table.wave")).to_have_count(2)
    assert progress.locator("a.status-succeeded").count() == 3  # each tenant links to its upgrade
    page.screenshot(path=str(screenshot_dir / "ui-rollout-succeeded.png"), full_page=True)

    _start(page, base, "broken", canary=1, wave_size=2)
    page.wait_for_selector("#rollout-progress[data-status=halted]", timeout=FINISH_TIMEOUT_MS)
    text = page.locator("#rollout-progress").inner_text()
    assert "Reason:" in text and "alpha rolled back" in text
    assert "0 of 3 tenants upgraded" in text
    page.screenshot(path=str(screenshot_dir / "ui-rollout-halted.png"), full_page=True)
    assert blocked_requests == []
