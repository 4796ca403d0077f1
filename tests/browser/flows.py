"""Steps the browser tests share."""

from __future__ import annotations


def log_in(page, base: str, username: str, password: str) -> None:
    """Log in through the real form and wait for the fleet page."""
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("table.fleet")
