"""Vendored htmx matches its recorded checksum; pages load only local scripts, none inline (the CSP forbids it)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "static" / "vendor"


def _recorded() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in (VENDOR / "VENDORED.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[0-9a-f]{64}", cells[4]):
            rows[cells[0]] = (cells[2], cells[4])
    return rows


def test_vendored_htmx_matches_recorded_checksum():
    recorded = _recorded()
    version, digest = recorded["htmx.min.js"]
    data = (VENDOR / "htmx.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    assert version.startswith("2.") and f'version:"{version}"' in data.decode()


def test_every_vendored_file_is_recorded():
    files = {p.name for p in VENDOR.iterdir() if p.name != "VENDORED.md"}
    assert files == set(_recorded())


def test_pages_load_local_scripts_only_and_carry_csrf_meta(client, login):
    login("viewer")
    page = client.get("/").get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts, "no scripts on the page"
    for attrs, body in scripts:
        assert body.strip() == "", "inline script"
        src = re.search(r'src="([^"]+)"', attrs).group(1)
        assert src.startswith("/static/"), src
    assert "/static/vendor/htmx.min.js" in page and "/static/ccp.js" in page
    assert re.search(r'<meta name="csrf-token" content="[^"]+"', page)
    assert " hx-on" not in page and "style=" not in page
    assert client.get("/static/vendor/htmx.min.js").status_code == 200


def test_ccp_js_sends_csrf_header_on_htmx_requests():
    js = (ROOT / "static" / "ccp.js").read_text()
    assert "htmx:configRequest" in js and '"X-CSRFToken"' in js
