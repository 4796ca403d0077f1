"""Maintenance windows and holds in a real browser (issue #16): an operator types a window with a bad time zone and
sees the field refused in place (nothing saved), fixes it and sees the header badge follow without a reload; then
applies a release outside the window: the dialog answers with the refusal and an "Apply anyway" button, which starts
the upgrade. No CSP violation on the way (the 4xx answers themselves are expected console lines, and only those).

Screenshots at 1280 and 390 px, light and dark: ui-maintenance-<window-refused|window-saved|apply-anyway>-*.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.flows import log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LOOKS = [(1280, "light"), (1280, "dark"), (390, "light"), (390, "dark")]
REPORT_CSP = """document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI);
});"""
SIDEWAYS = "() => document.scrollingElement.scrollWidth > window.innerWidth"
EXPECTED = ("status of 409", "status of 422", "Response Status Error Code 409", "Response Status Error Code 422")


def _looks(page, shots, name: str) -> list[str]:
    too_wide = []
    for width, scheme in LOOKS:
        page.set_viewport_size({"width": width, "height": 900})
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(shots / f"ui-maintenance-{name}-{width}-{scheme}.png"), full_page=True)
        if width == 390 and page.evaluate(SIDEWAYS):
            too_wide.append(f"{name} ({scheme})")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")
    return too_wide


def test_set_a_window_then_apply_outside_it(page, live_server, app, tenant_factory, operator, screenshot_dir,
                                            blocked_requests):
    from ccp.extensions import db
    from ccp.models import AuditEvent, Instance, utcnow

    tenant_factory(slug="acme")
    base = live_server(app)
    problems: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and not any(e in msg.text for e in EXPECTED)
            and problems.append(f"{page.url}: {msg.text}"))
    page.add_init_script(REPORT_CSP)
    log_in(page, base, *operator)
    page.goto(base + "/instances/acme/settings")
    closed_at = (utcnow().hour + 12) % 24  # twelve hours away: closed now, whenever the test runs
    page.fill("#f-cron", f"0 {closed_at} * * *")
    page.fill("#f-minutes", "120")
    page.fill("#f-timezone", "Europe/Atlantis")
    page.click("#maintenance button:has-text('Save window')")
    expect(page.locator("#e-timezone")).to_contain_text("not an IANA time zone name")
    too_wide = _looks(page, screenshot_dir, "window-refused")
    db.session.expire_all()
    assert db.session.execute(db.select(Instance.window_cron).filter_by(slug="acme")).scalar() is None

    # Load the tab afresh: Playwright's full-page screenshots leave style="" on the inputs, and htmx's settle copies
    # the old inputs' attributes onto the new ones, which the CSP (style-src 'self') then reports. Not a user's path.
    page.goto(base + "/instances/acme/settings")
    page.fill("#f-cron", f"0 {closed_at} * * *")
    page.fill("#f-minutes", "120")
    page.fill("#f-timezone", "Europe/Berlin")
    page.click("#maintenance button:has-text('Save window')")
    expect(page.locator("#maintenance [role=status]")).to_contain_text("Maintenance window saved.")
    expect(page.locator("#window-badge")).to_contain_text(f"Window: daily {closed_at:02d}:00–")  # out of band
    too_wide += _looks(page, screenshot_dir, "window-saved")

    page.click("a[role=tab]:has-text('Updates')")
    page.click("a:has-text('Upgrade to Release')")
    page.wait_for_selector("[role=dialog]")
    page.fill("#release-tag", "v2")
    page.click("#release-form button[type=submit]")
    expect(page.locator("#maintenance-note")).to_contain_text("Outside its maintenance window")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#preview button:has-text('Apply v2')")
    expect(page.locator("[data-code=outside_window]")).to_contain_text("is outside its maintenance window")
    too_wide += _looks(page, screenshot_dir, "apply-anyway")
    page.click("button:has-text('Apply anyway')")
    expect(page.locator("#upgrade-status")).to_have_attribute("data-active", "true")
    db.session.expire_all()
    started = db.session.execute(db.select(AuditEvent).filter_by(action="upgrade.start.release", result="ok")) \
        .scalar_one()
    assert started.detail["outside_window"] is True and started.actor == f"user:{operator[0]}"

    assert too_wide == [], f"scrolls sideways at 390 px: {too_wide}"
    assert problems == [], "console errors or CSP violations:\n" + "\n".join(problems)
    assert blocked_requests == []
