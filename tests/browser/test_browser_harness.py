"""The browser harness itself: headless Chromium + Playwright against a local werkzeug server."""
from __future__ import annotations

import json

from werkzeug.wrappers import Request, Response

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ccp browser harness</title>
<style>body{font-family:sans-serif;margin:2em} #status{padding:.5em;background:#eef}</style></head>
<body>
  <h1>Browser harness</h1>
  <button id="go" type="button">Ping the server</button>
  <div id="status">idle</div>
  <ul id="items"></ul>
  <script>
    document.getElementById("go").addEventListener("click", async () => {
      document.getElementById("status").textContent = "loading";
      const resp = await fetch("/api/ping", {method: "POST", headers: {"X-Test": "1"}});
      const data = await resp.json();
      document.getElementById("status").textContent = "pong " + data.count;
      const li = document.createElement("li");
      li.textContent = "item " + data.count;
      document.getElementById("items").appendChild(li);
    });
  </script>
</body></html>
"""


def make_app():
    state = {"count": 0, "headers": []}

    @Request.application
    def app(request: Request) -> Response:
        if request.path == "/":
            return Response(PAGE, mimetype="text/html")
        if request.path == "/api/ping" and request.method == "POST":
            state["count"] += 1
            state["headers"].append(request.headers.get("X-Test"))
            return Response(json.dumps({"count": state["count"]}), mimetype="application/json")
        return Response("not found", status=404)

    return app, state


def test_click_changes_dom_and_screenshot(page, live_server, screenshot_dir):
    app, state = make_app()
    base = live_server(app)
    page.goto(base + "/")
    assert page.title() == "ccp browser harness"
    assert page.text_content("#status") == "idle"

    page.click("#go")
    page.wait_for_selector("#status:has-text('pong 1')")
    page.click("#go")
    page.wait_for_selector("#items li:nth-child(2)")

    assert page.text_content("#status") == "pong 2"
    assert page.locator("#items li").all_text_contents() == ["item 1", "item 2"]
    assert state["count"] == 2 and state["headers"] == ["1", "1"]

    shot = screenshot_dir / "browser-harness.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_off_loopback_requests_are_blocked(page, live_server, blocked_requests):
    app, _ = make_app()
    base = live_server(app)
    page.goto(base + "/")
    result = page.evaluate(
        """async () => {
             try { await fetch("http://blocked.invalid/x"); return "reached"; }
             catch (e) { return "blocked"; }
           }"""
    )
    assert result == "blocked"
    assert blocked_requests == ["http://blocked.invalid/x"]


def test_page_fixture_is_isolated_per_test(page):
    # a fresh context: no state from the previous tests
    page.set_content("<p id=x>fresh</p>")
    assert page.text_content("#x") == "fresh"
    assert page.context.cookies() == []
