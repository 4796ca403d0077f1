"""browser tier: Chromium (/usr/bin/chromium, from Debian) driven by Python Playwright (see docs/testing.md).

Every test under tests/browser is marked ``browser`` and needs the session fixture ``browser``. When Chromium or
Playwright is missing or will not launch:

* locally: tests are skipped with the reason (run ``bash .ci/browser-up.sh``),
* with CI=true: they FAIL loudly, unless CCP_BROWSER_SKIP_REASON is set (what .ci/run does when
  browser-up.sh exits 3 with "BROWSER UNAVAILABLE: ..."), then they are skipped with that reason.

Never run ``playwright install``: it downloads a browser build; we launch the distro Chromium by path.

Fixtures: ``browser`` (session), ``page`` (fresh context per test; requests to anything but loopback are
aborted; a screenshot is saved when the test fails), ``screenshot_dir`` (test-output/screenshots/),
``live_server`` (factory: serve a WSGI app - e.g. the Flask app - on 127.0.0.1 in a thread, returns its URL).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import tenants
from tests.factories import make_user
from tests.tiers import mark_tier, tier_unavailable

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SKIP_ENV = "CCP_BROWSER_SKIP_REASON"
CHROMIUM = os.environ.get("CCP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DEFAULT_TIMEOUT_MS = 10_000
LOOPBACK_HOSTS = {"localhost", "::1", "[::1]"}


def unavailable(reason: str):
    tier_unavailable("browser", reason, skip_env=SKIP_ENV, fix="run: bash .ci/browser-up.sh")


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "about", "blob"):
        return True
    host = (parts.hostname or "").lower()
    return host in LOOPBACK_HOSTS or bool(re.fullmatch(r"127(\.\d{1,3}){3}", host))


def pytest_collection_modifyitems(config, items):
    mark_tier(items, HERE, pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Playwright, distro binary)."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} not found or not executable (apt-get install chromium)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"python package playwright not importable: {exc}")
    pw = sync_playwright().start()
    try:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        except PlaywrightError as exc:
            unavailable(f"Chromium would not launch: {str(exc).strip().splitlines()[0]}")
        yield b
        b.close()
    finally:
        pw.stop()


@pytest.fixture(autouse=True)
def _browser_tests_need_browser(browser):
    """autouse in this directory only: every browser test needs Chromium (or is skipped/failed per policy)."""


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """test-output/screenshots/ at the repo root (created; git-ignored via test-output/)."""
    d = Path(os.environ.get("CCP_SCREENSHOT_DIR", REPO_ROOT / "test-output" / "screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def blocked_requests() -> list[str]:
    """URLs the page tried to reach off-loopback (aborted by the ``page`` fixture's guard)."""
    return []


@pytest.fixture
def page(browser, screenshot_dir, blocked_requests, request):
    """A page in a fresh browser context. Only loopback/data: URLs load; anything else is aborted and recorded
    in ``blocked_requests``. On failure a screenshot lands in screenshot_dir as <test>-FAILED.png."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)

    def guard(route):
        url = route.request.url
        if is_loopback_url(url):
            route.continue_()
        else:
            blocked_requests.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    pg = context.new_page()
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
        from playwright.sync_api import Error as PlaywrightError

        try:
            pg.screenshot(path=str(screenshot_dir / f"{name}-FAILED.png"), full_page=True)
        except PlaywrightError as exc:  # the page may be gone; the test failure is what matters
            print(f"could not save failure screenshot: {exc}")
    context.close()


@pytest.fixture
def live_server():
    """Factory: ``live_server(wsgi_app) -> "http://127.0.0.1:PORT"``; a werkzeug server in a daemon thread,
    shut down at teardown. Works for a Flask app (``live_server(create_app(...))``)."""
    from werkzeug.serving import make_server

    servers = []

    def start(app, host: str = "127.0.0.1") -> str:
        server = make_server(host, 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name=f"live-server-{server.port}", daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://{host}:{server.port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=10)


# --- the app's worker and an operator, for the UI flows ------------------------------------------------------

@pytest.fixture
def worker(app_env, tmp_path):
    """A real `ccp worker` process on this test's database and queue, stopped at teardown."""
    env = {**os.environ, **app_env, "CCP_LOCAL_COMPOSE_COMMAND": shlex.join(tenants.FAKE_COMPOSE)}
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ccp.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def operator(app):
    user, password = make_user("olivia", role="operator")
    return user.username, password
