"""Add instance in a real browser: Test connection shows the agent's answer under the key field, then the added
tenant opens on its baseline. Screenshots at 1280 and 390 px, light and dark."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests import tenants
from tests.browser.flows import log_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_enroll_a_registered_tenant(browser, live_server, app, tmp_path, screenshot_dir):
    from tests.factories import make_user

    install = tmp_path / "hosts" / "acme"
    shape = SimpleNamespace(slug="acme", name="Acme", domain="acme.example.test", install_dir=str(install),
                            compose_project="acme", is_registered=True, image_tag="v1", vars={}, health_urls=[],
                            template_set="default")
    tenants.make_tenant_files(install, shape, "v1",
                              registered_env=tenants.REGISTERED_ENV_HEAD.format(canary=tenants.CANARY))
    agent = tenants.start_agent(tmp_path / "agent", {"acme": install}, "acme")
    admin, password = make_user("ada", role="admin")
    base = live_server(app)
    try:
        for width, scheme in ((1280, "light"), (1280, "dark"), (390, "light"), (390, "dark")):
            context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None)
            log_in(page, base, admin.username, password)
            page.goto(base + "/instances/new")
            page.fill("#f-slug", "acme")
            page.fill("#f-agent_url", agent.url)
            page.fill("#f-agent_key_id", agent.key_id)
            page.fill("#f-agent_key", agent.key)
            page.click("button:has-text('Test connection')")
            expect(page.locator("#agent-probe .alert-ok")).to_contain_text("Connected: agent")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.locator("#instance-form").screenshot(path=str(screenshot_dir / f"ui-enroll-{width}-{scheme}.png"))
            assert agent.key not in page.content().replace(f'value="{agent.key}"', "")
            assert errors == [], errors
            context.close()
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        log_in(page, base, admin.username, password)
        page.goto(base + "/instances/new")
        for field, value in (("slug", "acme"), ("name", "Acme"), ("domain", "acme.example.test"),
                             ("agent_url", agent.url), ("agent_key_id", agent.key_id), ("agent_key", agent.key),
                             ("compose_project", "acme"), ("image_tag", "v1")):
            page.fill(f"#f-{field}", value)
        page.check("input[name=is_registered]")
        page.click("button:has-text('Add instance')")
        expect(page.locator("h1")).to_contain_text("is enrolled: its baseline at v1")
        page.screenshot(path=str(screenshot_dir / "ui-enroll-baseline-1280-light.png"), full_page=True)
    finally:
        agent.stop()
