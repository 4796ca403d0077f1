"""/favicon.ico answers without a login (browsers ask for it on every origin), with the linked SVG icon."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_favicon_ico_is_the_svg_icon_and_needs_no_login(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200
    assert resp.mimetype == "image/svg+xml"
    assert resp.data.lstrip().startswith(b"<svg")
    assert "max-age=" in resp.headers["Cache-Control"]


def test_pages_link_the_icon_they_serve(client):
    page = client.get("/login").get_data(as_text=True)
    href = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', page).group(1)
    assert client.get(href).status_code == 200
