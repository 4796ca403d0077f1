"""The fleet page's filters in Chromium: counts per filter, a click narrows the rows (htmx, URL kept), a search
keeps the filter and updates the counts, each row says why it is flagged, and a drifted row links to what a
re-apply restores; the page fits 390 px in light and dark with no serious axe-core finding.

Screenshots: screenshot_dir/ui-layout-fleet-filters-<state>-<width>-<scheme>.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ccp.extensions import db
from ccp.models import InstanceScan, Upgrade, utcnow
from tests.browser.flows import log_in
from tests.browser.test_ui_layout import Walk
from tests.factories import make_instance

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _seed() -> None:
    def scanned(name: str, **fields):
        inst = make_instance(name=name, domain=f"{name.split()[0].lower()}.customers.example.com", image_tag="v2.3.1")
        db.session.add(InstanceScan(instance_id=inst.id, drifted_files=fields.pop("drifted_files", []),
                                    agent_facts={}, image_digests={}, drift_at=utcnow(), **fields))
        return inst

    scanned("Acme Bakery", sync_state="in_sync", update_state="update_available", behind_by=2, newest_tag="v2.5.0",
            update_detail="registry.example.com/acme/app:v2.3.1 points to a new image; behind by 2 releases "
                          "(newest allowed: v2.5.0)")
    scanned("Bluebird Logistics", sync_state="drifted",
            drifted_files=["docker-compose.yml", ".env", "config/nginx/site.conf", "scripts/upgrade.sh"])
    scanned("Cobalt Clinic", sync_state="unreachable", unreachable_since=utcnow(),
            sync_detail="agent at https://cobalt-clinic.customers.example.com:8443 is unreachable: connect timeout")
    old = scanned("Delta Dental", sync_state="in_sync")
    old.agent_version, old.agent_capabilities = "0.9.2", ["files.diff", "env.keys"]
    busy = scanned("Echo Engineering", sync_state="in_sync")
    db.session.add(Upgrade(instance_id=busy.id, kind="release", status="running", to_tag="v2.5.0", actor="x"))
    attention = scanned("Foxtrot Foods", sync_state="in_sync")
    attention.attention = "rollback of upgrade #41 failed"
    scanned("Gamma Gardens", sync_state="in_sync")
    db.session.commit()


def test_fleet_filters_narrow_count_and_say_why(app, page, live_server, operator, screenshot_dir):
    _seed()
    base = live_server(app)
    walk = Walk(page, screenshot_dir)
    log_in(page, base, *operator)
    expect(page.locator("#fleet-rows tr")).to_have_count(7)
    expect(page.locator("#fleet-filters .chip-drifted")).to_contain_text("Drifted 1")
    walk.look("fleet-filters-all")
    page.click("#fleet-filters .chip-drifted")
    expect(page.locator("#fleet-rows tr")).to_have_count(1)
    assert "f=drifted" in page.url
    expect(page.locator("#fleet-filters .chip-drifted")).to_have_attribute("aria-current", "true")
    expect(page.locator("#fleet-rows")).to_contain_text("4 files differ from a re-apply")
    walk.look("fleet-filters-drifted")
    page.click("#fleet-filters a.chip:has-text('All')")
    expect(page.locator("#fleet-rows tr")).to_have_count(7)
    page.click("#fleet-filters .chip-behind")
    expect(page.locator("#fleet-rows tr")).to_have_count(1)
    page.fill("#fleet-search", "zzz")  # the search keeps the filter; the counts follow the search
    expect(page.locator("#fleet-rows")).to_contain_text("falls under this filter")
    expect(page.locator("#fleet-filters .chip-behind")).to_contain_text("Behind 0")
    page.fill("#fleet-search", "")
    expect(page.locator("#fleet-rows tr")).to_have_count(1)
    page.goto(base + "/?f=drifted")
    with page.expect_navigation():
        page.click("text=What a re-apply restores")
    assert "/fleet/drift/" in page.url  # the tenant's agent is not reachable here: the page says why
    assert not walk.too_wide, walk.too_wide
    assert not walk.accessibility, "\n".join(walk.accessibility)


def test_schedules_and_channels_page(app, page, live_server, screenshot_dir):
    from ccp.services.notify import create_channel
    from tests.factories import make_user

    create_channel("ops-telegram", "tgram://123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr/-100123456",
                   ["upgrade.failed", "rollout.halted", "scan.drift", "agent.unreachable"], actor="seed")
    admin, password = make_user("ada", role="admin")
    base = live_server(app)
    walk = Walk(page, screenshot_dir)
    log_in(page, base, admin.username, password)
    page.goto(base + "/admin/awareness")
    assert "AAbbCCdd" not in page.content()  # the bot token is never shown back
    page.fill("#cron-drift", "every hour")
    page.click("#schedule-drift button[type=submit]")
    expect(page.locator("#cron-drift-error")).to_contain_text("five fields")
    walk.look("awareness-admin")
    assert not walk.too_wide, walk.too_wide
    assert not walk.accessibility, "\n".join(walk.accessibility)
