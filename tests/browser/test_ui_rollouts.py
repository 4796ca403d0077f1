"""Rollouts in a real browser: the form leads to a fleet preview (per tenant what would change, who is blocked, the
waves), its confirm button starts the rollout, and the page follows its waves to the end without reloading; a broken
tag halts at the canary and the page says why. Jobs run in a real `ccp worker` process (dry-run compose runtime).

Screenshots: ui-rollout-preview-<width>-<scheme>.png and ui-rollout-page-<width>-<scheme>.png (1280/390, light/dark)
in screenshot_dir; at 390 px neither page may scroll sideways."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.flows import log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FINISH_TIMEOUT_MS = 90_000
LOOKS = [(1280, "light"), (1280, "dark"), (390, "light"), (390, "dark")]
SIDEWAYS = "() => [document.scrollingElement.scrollWidth, window.innerWidth]"


def _looks(page, shots, name: str) -> dict[str, tuple[int, int]]:
    """Screenshots of the page in four looks; the looks at 390 px that scroll sideways (scrollWidth, innerWidth)."""
    too_wide = {}
    for width, scheme in LOOKS:
        page.set_viewport_size({"width": width, "height": 900})
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(shots / f"ui-rollout-{name}-{width}-{scheme}.png"), full_page=True)
        scroll_width, inner_width = page.evaluate(SIDEWAYS)
        if width == 390 and scroll_width > inner_width:
            too_wide[f"{name} {scheme}"] = (scroll_width, inner_width)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.emulate_media(color_scheme="light")
    return too_wide


def _preview(page, base: str, tag: str, canary: int, wave_size: int, instances=()) -> None:
    page.goto(base + "/rollouts")
    page.fill("#r-tag", tag)
    page.fill("#r-canary", str(canary))
    page.fill("#r-waveSize", str(wave_size))
    if instances:
        page.click("#rollout-form summary")
        for slug in instances:
            page.check(f"#rollout-form input[name=instances][value={slug}]")
    page.click("#rollout-form button[type=submit]")
    page.wait_for_selector("#rollout-preview")


def _confirm(page) -> None:
    page.click(".rollout-confirm button[type=submit]")  # the confirmation dialog is accepted (page.on below)
    page.wait_for_url(re.compile(r".*/rollouts/\d+$"))


def test_preview_then_start_a_rollout_and_watch_its_waves(page, live_server, app, tenant_factory, worker, operator,
                                                           screenshot_dir, blocked_requests):
    from ccp.services.instances import update_instance
    from tests import tenants
    from tests.factories import make_instance

    for slug in ("alpha", "bravo", "charlie"):
        tenant_factory(slug=slug)
    rotated = tenant_factory(slug="delta")
    update_instance(rotated, {"secrets": {**tenants.provisioned_secrets(), "SMTP_PASSWORD": "rotated"}}, actor="test")
    make_instance(slug="echo")  # its agent is down
    tenant_factory(slug="foxtrot", tag="v2")  # already there
    base = live_server(app)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    log_in(page, base, *operator)

    _preview(page, base, "v2", canary=1, wave_size=2)
    preview = page.locator("#rollout-preview")
    text = preview.inner_text()
    assert "5 tenants in 3 waves" in text and "1 already on v2 (skipped)" in text
    assert "1 tenant cannot be upgraded as things stand" in text and "halts at wave 3" in text
    assert "Secrets would change on 1 tenant" in text and "SMTP_PASSWORD" in text and "rotated" not in text
    expect(preview.locator("table.wave")).to_have_count(3)
    expect(preview.locator("table.wave caption").first).to_have_text(re.compile(r"Wave 1 · canary · 1 tenant"))
    expect(preview.locator("tr.blocked")).to_have_count(1)
    assert "Agent unreachable" in preview.locator("tr.blocked").inner_text()
    assert page.url.endswith("/rollouts")  # the preview came in place: nothing started
    too_wide = _looks(page, screenshot_dir, "preview")

    _preview(page, base, "v2", canary=1, wave_size=2, instances=("alpha", "bravo", "charlie"))
    button = page.locator(".rollout-confirm button[type=submit]")
    expect(button).to_have_text("Start rollout of v2 (3 tenants in 2 waves)")
    _confirm(page)
    assert dialogs == ["Start rollout of v2 (3 tenants in 2 waves)?"]
    url = page.url
    page.wait_for_selector("#rollout-progress[data-status=succeeded]", timeout=FINISH_TIMEOUT_MS)
    assert page.url == url  # the progress section replaced itself; the page was not reloaded
    progress = page.locator("#rollout-progress")
    assert "3 of 3 tenants upgraded in 2 waves" in progress.inner_text()
    expect(progress.locator("table.wave")).to_have_count(2)
    expect(progress.locator("td[data-label=Upgrade] a")).to_have_count(3)  # each tenant links to its upgrade
    durations = progress.locator("td[data-label=Duration]").all_inner_texts()
    assert len(durations) == 3 and all(re.fullmatch(r"\d+(\.\d)? s", d.strip()) for d in durations), durations
    assert page.locator("h1").inner_text() == "Rollout of v2 from v1"
    # waves line up: each column starts at the same x in every wave's table
    lefts = page.evaluate("""() => [...document.querySelectorAll('#rollout-progress table.wave')].map(
        t => [...t.querySelectorAll('thead th')].map(th => Math.round(th.getBoundingClientRect().left)))""")
    assert lefts[0] == lefts[1], lefts
    too_wide |= _looks(page, screenshot_dir, "page")
    page.goto(base + "/rollouts")
    assert "v1 → v2" in page.locator("table.rollouts tbody tr").first.inner_text()
    too_wide |= _looks(page, screenshot_dir, "list")
    assert too_wide == {}, f"pages scroll sideways at 390 px: {too_wide}"

    _preview(page, base, "broken", canary=1, wave_size=2, instances=("alpha", "bravo", "charlie"))
    _confirm(page)
    page.wait_for_selector("#rollout-progress[data-status=halted]", timeout=FINISH_TIMEOUT_MS)
    text = page.locator("#rollout-progress").inner_text()
    assert "Reason:" in text and "alpha rolled back" in text
    assert "0 of 3 tenants upgraded" in text
    page.screenshot(path=str(screenshot_dir / "ui-rollout-halted.png"), full_page=True)
    assert blocked_requests == []
