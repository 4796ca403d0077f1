"""The operator's path in a real browser: log in -> open a tenant -> preview v2 (statuses, env alert) -> apply ->
the status widget reaches "Succeeded" without a reload; a broken tag ends "Rolled back" with its cause.

The app is served by werkzeug on 127.0.0.1 (live_server); jobs run in a real `ccp worker` subprocess on the same
database and Redis queue; tenants are real install dirs with the fake compose runtime (tests/tenants.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests import tenants
from tests.browser.flows import log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FINISH_TIMEOUT_MS = 60_000


def _open_release_dialog(page, base: str, name: str, tag: str) -> None:
    page.goto(base + "/")
    page.click(f"text={name}")
    page.click("#instance-tabs a:has-text('Updates')")
    page.click("a:has-text('Upgrade to Release')")
    page.wait_for_selector("[role=dialog]")
    page.fill("#release-tag", tag)
    page.wait_for_selector("#tag-feedback:has-text('is a valid tag')")
    page.click("#release-form button[type=submit]")
    page.wait_for_selector("#preview")


def test_preview_apply_and_watch_it_succeed(page, live_server, app, tenant_factory, worker, operator,
                                            screenshot_dir, blocked_requests):
    inst = tenant_factory(registered=True, slug="acme")
    env = Path(inst.install_dir) / ".env"
    complete = env.read_text()
    env.write_text("".join(line + "\n" for line in complete.splitlines() if not line.startswith("POSTGRES_PASSWORD=")))
    tenant_factory(slug="globex")
    base = live_server(app)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base, *operator)

    page.fill("#fleet-search", "acm")
    expect(page.locator("#fleet-rows tr")).to_have_count(1)  # filtered as typed (no eval: the CSP forbids it)
    page.screenshot(path=str(screenshot_dir / "ui-fleet.png"), full_page=True)

    _open_release_dialog(page, base, "Tenant acme", "v2")
    assert page.locator("#preview .summary").inner_text().count("unchanged") == 1
    assert page.locator("#preview .files .tag-unchanged").count() >= 10  # per-file status tags
    alert = page.locator("#env-alert")
    assert alert.is_visible() and "POSTGRES_PASSWORD" in alert.inner_text()
    assert tenants.CANARY not in page.content()
    page.screenshot(path=str(screenshot_dir / "ui-preview.png"), full_page=True)

    env.write_text(complete)  # the operator fixes the tenant's .env, previews again: no alert, apply can run
    page.click("#release-form button[type=submit]")
    expect(page.locator("#env-alert.alert-error")).to_have_count(0)
    url_before = page.url
    page.click("#preview button:has-text('Apply v2')")
    page.wait_for_selector("#upgrade-status[data-status=succeeded]", timeout=FINISH_TIMEOUT_MS)
    assert page.url == url_before  # no reload, no navigation: the widget replaced itself
    assert page.locator("[role=dialog]").count() == 0
    assert "Succeeded" in page.locator("#upgrade-status").inner_text()
    assert page.locator("#upgrade-status .step-succeeded").count() >= 5
    page.screenshot(path=str(screenshot_dir / "ui-succeeded.png"), full_page=True)
    assert blocked_requests == []


def test_broken_tag_rolls_back_with_cause(page, live_server, app, tenant_factory, worker, operator, screenshot_dir):
    tenant_factory(slug="initech")
    base = live_server(app)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base, *operator)
    _open_release_dialog(page, base, "Tenant initech", "broken")
    page.click("#preview button:has-text('Apply broken')")
    page.wait_for_selector("#upgrade-status[data-status=rolled_back]", timeout=FINISH_TIMEOUT_MS)
    text = page.locator("#upgrade-status").inner_text()
    assert "Rolled back" in text and "Cause:" in text
    page.screenshot(path=str(screenshot_dir / "ui-rolled-back.png"), full_page=True)


def test_the_release_page_previews_and_applies_without_the_dialog(page, live_server, app, tenant_factory, worker,
                                                                 operator):
    """/instances/<slug>/release (the dialog as a page, for links and no-JS): Preview swaps in the preview, and its
    Apply is a plain form post that lands on the upgrade's page (there is no status widget on this page)."""
    tenant_factory(slug="acme")
    base = live_server(app)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base, *operator)
    page.goto(base + "/instances/acme/release")
    page.fill("#release-tag", "v2")
    page.wait_for_selector("#tag-feedback:has-text('is a valid tag')")
    page.click("#release-form button[type=submit]")
    page.wait_for_selector("#preview")
    page.click("#preview button:has-text('Apply v2')")
    page.wait_for_url(lambda url: "/upgrades/" in url)
    page.wait_for_selector("#upgrade-status[data-status=succeeded]", timeout=FINISH_TIMEOUT_MS)
