"""Files browsers ask for at fixed URLs outside /static: /favicon.ico.

Pages link the SVG icon (base.html); browsers, feed readers and the API's JSON responses still request /favicon.ico,
and a 404 there fills logs and consoles. It answers with the same SVG, public and cacheable, no login needed.
"""

from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("static_routes", __name__)

FAVICON = "favicon.svg"
FAVICON_MAX_AGE_S = 7 * 24 * 3600


@bp.get("/favicon.ico")
def favicon():
    """The site icon (SVG) for browsers that ask for /favicon.ico without reading the page's <link rel=icon>."""
    return send_from_directory(current_app.static_folder, FAVICON, mimetype="image/svg+xml",
                               max_age=FAVICON_MAX_AGE_S)
