"""The one fragment-vs-page helper and the polled-response rules."""

from __future__ import annotations

import pytest
from flask import make_response

from ccp.web import htmx


@pytest.mark.parametrize("headers, fragment", [
    ({}, False),
    ({"HX-Request": "true"}, True),
    ({"HX-Request": "true", "HX-Boosted": "true"}, False),
    ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
    ({"HX-Request": "false"}, False),
])
def test_wants_fragment(app, headers, fragment):
    with app.test_request_context("/", headers=headers):
        assert htmx.wants_fragment() is fragment


def test_render_picks_partial_and_varies_on_hx_request(app):
    with app.test_request_context("/", headers={"HX-Request": "true"}):
        response = htmx.render("errors/page.html", "errors/_message.html", error=_Err())
        body = response.get_data(as_text=True)
        assert "<html" not in body and "Gone away" in body
        assert "HX-Request" in response.headers["Vary"]
    with app.test_request_context("/"):
        response = htmx.render("errors/page.html", "errors/_message.html", error=_Err())
        assert "<html" in response.get_data(as_text=True)
        assert "HX-Request" in response.headers["Vary"]


def test_polled_final_answers_286_and_no_store(app):
    with app.test_request_context("/", headers={"HX-Request": "true"}):
        assert htmx.polled(make_response("x"), final=True).status_code == 286
        running = htmx.polled(make_response("x"), final=False)
        assert running.status_code == 200 and running.headers["Cache-Control"] == "no-store"
    with app.test_request_context("/"):  # a plain page load of a finished upgrade is an ordinary 200
        response = htmx.polled(make_response("x"), final=True)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


class _Err:
    code, name, description = 410, "Gone", "Gone away."
