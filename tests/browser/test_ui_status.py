"""The live status on the instance page, watched in a real browser while a real worker runs the upgrade: "step n of
m" with a ticking running time and the running step's output, the upgrade actions disabled (with the reason) while
it runs and enabled again after, and the header's tag changing from v1 to v2 without a reload (the final widget's
out-of-band swap), with no console error or CSP violation on the way.

The dry-run compose sleeps a little per pull/up and the tenant's health URL is watched for a few seconds, so the
running state lasts long enough to look at. Screenshots of the running and the final status at 1280 and 390 px,
light and dark (and of History after it): ui-status-<running|final|history>-<width>-<scheme>.png in screenshot_dir.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.flows import log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LOOKS = [(1280, "light"), (1280, "dark"), (390, "light"), (390, "dark")]
FINISH_TIMEOUT_MS = 60_000
REPORT_CSP = """document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI);
});"""
SIDEWAYS = "() => document.scrollingElement.scrollWidth > window.innerWidth"


def _looks(page, shots, name: str) -> list[str]:
    """Screenshots of the page in the four looks; the names of those that scroll sideways at 390 px."""
    too_wide = []
    for width, scheme in LOOKS:
        page.set_viewport_size({"width": width, "height": 900})
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(shots / f"ui-status-{name}-{width}-{scheme}.png"), full_page=True)
        if width == 390 and page.evaluate(SIDEWAYS):
            too_wide.append(f"{name} ({scheme})")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")
    return too_wide


def test_watch_an_upgrade_run_and_end(page, live_server, app, tenant_factory, operator, request, monkeypatch,
                                      screenshot_dir, blocked_requests):
    monkeypatch.setenv("DRY_RUN_COMPOSE_SLEEP", "2")  # read by the worker's dry-run compose: pull and up take 2 s
    request.getfixturevalue("worker")
    base = live_server(app)
    tenant_factory(slug="acme", health_urls=[base + "/healthz"], monitor_window_s=4)
    problems: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"{page.url}: {msg.text}"))
    page.on("pageerror", lambda exc: problems.append(f"{page.url}: {exc}"))
    page.on("dialog", lambda dialog: dialog.accept())
    page.add_init_script(REPORT_CSP)
    log_in(page, base, *operator)

    page.goto(base + "/instances/acme/updates")
    facts, widget = page.locator("#instance-facts"), page.locator("#upgrade-status")
    quick, release = page.locator("button:has-text('Quick Upgrade')"), page.locator("a:has-text('Upgrade to Release')")
    reason = page.locator("[data-idle-reason]")
    assert "v1" in facts.inner_text()
    expect(quick).to_be_enabled()
    expect(reason).to_be_hidden()

    release.click()
    page.wait_for_selector("[role=dialog]")
    assert page.locator("#seen-tags option[value=v1]").count() == 1  # the tag field suggests the fleet's tags
    page.fill("#release-tag", "v2")
    page.wait_for_selector("#tag-feedback:has-text('is a valid tag')")
    page.click("#release-form button[type=submit]")
    page.wait_for_selector("#preview")
    url_before = page.url
    page.click("#preview button:has-text('Apply v2')")

    # Running: step n of m with its running time and the running step's output; the actions wait, and say why.
    expect(widget).to_have_attribute("data-active", "true")
    expect(page.locator(".step-now")).to_have_text(re.compile(r"Step ([1-9]|10) of 10"))
    expect(quick).to_be_disabled()
    expect(page.locator("button:has-text('Upgrade Now')")).to_be_disabled()
    expect(release).to_have_attribute("aria-disabled", "true")
    expect(reason).to_be_visible()
    expect(page.locator(".step-now")).to_contain_text("Step 7 of 10", timeout=FINISH_TIMEOUT_MS)
    expect(page.locator("details.output pre.tail")).to_contain_text("docker compose pull")
    ticking = page.locator(".step-now .elapsed")
    first = ticking.inner_text()
    page.wait_for_timeout(1200)
    assert ticking.inner_text() != first, "the running time does not tick"
    too_wide = _looks(page, screenshot_dir, "running")
    expect(page.locator(".step-now")).to_contain_text("Step 9 of 10", timeout=FINISH_TIMEOUT_MS)
    expect(page.locator("details.output pre.tail")).to_contain_text("watching them", timeout=FINISH_TIMEOUT_MS)

    # Ended: the same response swapped in the header with the new tag and gave the actions back.
    page.wait_for_selector("#upgrade-status[data-status=succeeded]", timeout=FINISH_TIMEOUT_MS)
    assert page.url == url_before
    expect(facts.locator("code")).to_have_text("v2")
    expect(quick).to_be_enabled()
    expect(release).not_to_have_attribute("aria-disabled", "true")
    expect(reason).to_be_hidden()
    assert "10 of 10 steps done" in widget.inner_text()
    too_wide += _looks(page, screenshot_dir, "final")

    page.click("#instance-tabs a:has-text('History')")
    row = page.locator("table.history tbody tr").first
    expect(row).to_contain_text("Succeeded")
    assert re.search(r"\d\d:\d\d:\d\d UTC", row.inner_text()) and "user:" in row.inner_text()
    too_wide += _looks(page, screenshot_dir, "history")

    assert too_wide == [], f"scrolls sideways at 390 px: {too_wide}"
    assert problems == [], "console errors or CSP violations:\n" + "\n".join(problems)
    assert blocked_requests == []
