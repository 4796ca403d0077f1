"""Rolling back in a real browser: the History tab's release timeline -> "Roll back to this release" -> the dialog's
banner and preview -> apply -> the status widget reaches "Succeeded" and the timeline marks the rollback current;
then a finished rollout's "Roll back this rollout" page. Screenshots at 1280 and 390 px.

Served by werkzeug on 127.0.0.1 (live_server); jobs run in a real `ccp worker` subprocess; tenants are real install
dirs with the fake compose runtime (tests/tenants.py).
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from ccp.extensions import db
from ccp.models import Rollout, Upgrade
from ccp.services import rollouts, upgrades
from tests.browser.flows import log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FINISH_TIMEOUT_MS = 60_000


def _wait(model, row_id: int, done=("succeeded", "failed", "rolled_back", "halted", "cancelled")):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        db.session.expire_all()
        row = db.session.get(model, row_id)
        if row.status in done:
            return row
        time.sleep(0.1)
    raise AssertionError(f"{model.__name__} {row_id} still {row.status}")


def _release(inst, tag: str) -> Upgrade:
    upgrade = upgrades.start_release(inst, tag, plan=upgrades.preview_release(inst, tag).plan_hash, actor="user:ann")
    upgrade = _wait(Upgrade, upgrade.id)
    assert upgrade.status == "succeeded", upgrade.error
    db.session.refresh(inst)
    return upgrade


def test_roll_back_to_an_earlier_release_from_the_history_tab(page, live_server, app, tenant_factory, worker,
                                                              operator, screenshot_dir, blocked_requests):
    inst = tenant_factory(slug="acme")
    v1 = _release(inst, "v1")
    _release(inst, "v2")
    base = live_server(app)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, base, *operator)

    page.goto(f"{base}/instances/acme")
    page.click("#instance-tabs a:has-text('History')")
    timeline = page.locator("ol.timeline > li")
    expect(timeline).to_have_count(2)
    expect(timeline.first).to_contain_text("current")
    page.screenshot(path=str(screenshot_dir / "ui-history-1280.png"), full_page=True)

    page.click(f"#release-{v1.id} a:has-text('Roll back to this release')")
    banner = page.locator("#rollback-banner")
    expect(banner).to_contain_text(f"Rolling back to release #{v1.id} — v1, set default 1.0.0, applied by user:ann")
    expect(page.locator("#rollback-files")).to_contain_text("Every file will be exactly what")
    expect(page.locator("#preview h3")).to_contain_text("v2 → v1")
    page.screenshot(path=str(screenshot_dir / "ui-rollback-dialog-1280.png"), full_page=True)

    page.click(f"#preview button:has-text('Roll back to v1 (release #{v1.id})')")
    expect(page.locator("[role=dialog]")).to_have_count(0)  # the dialog closes; the widget follows the upgrade
    expect(page.locator("#upgrade-status .status")).to_have_text("Succeeded", timeout=FINISH_TIMEOUT_MS)
    back = db.session.execute(db.select(Upgrade).order_by(Upgrade.id.desc())).scalars().first()
    assert back.rollback_of == v1.id and back.to_tag == "v1"

    page.click("#instance-tabs a:has-text('History')")
    expect(timeline).to_have_count(3)
    expect(timeline.first).to_contain_text(f"rollback to #{v1.id}")
    expect(timeline.first).to_contain_text("current")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshot_dir / "ui-history-390.png"), full_page=True)
    page.click(f"#release-{v1.id} a:has-text('Roll back to this release')")
    expect(page.locator("#rollback-banner")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "ui-rollback-dialog-390.png"), full_page=True)
    assert blocked_requests == []


def test_roll_back_a_rollout_from_its_page(page, live_server, app, tenant_factory, worker, operator,
                                           screenshot_dir, blocked_requests):
    for slug in ("wave-a", "wave-b", "wave-c"):
        tenant_factory(slug=slug)
    forward = rollouts.start_rollout("v2", instances=["wave-a", "wave-b", "wave-c"], canary=1, wave_size=2,
                                     actor="user:ann")
    assert _wait(Rollout, forward.id).status == "succeeded"
    base = live_server(app)
    log_in(page, base, *operator)

    page.goto(f"{base}/rollouts/{forward.id}")
    page.click("a:has-text('Roll back this rollout')")
    expect(page.locator("#rollback-preview h2")).to_have_text(
        "Preview: 3 tenants back to their previous tags in 2 waves")
    page.screenshot(path=str(screenshot_dir / "ui-rollout-rollback-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshot_dir / "ui-rollout-rollback-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click("button:has-text('Start rollback of 3 tenants in 2 waves')")
    expect(page.locator("h1")).to_contain_text(f"Rollback of rollout #{forward.id}")
    expect(page.locator("#rollout-progress")).to_have_attribute("data-status", "succeeded",
                                                                 timeout=FINISH_TIMEOUT_MS)
    page.reload()
    page.screenshot(path=str(screenshot_dir / "ui-rollback-rollout-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshot_dir / "ui-rollback-rollout-390.png"), full_page=True)
    assert blocked_requests == []
