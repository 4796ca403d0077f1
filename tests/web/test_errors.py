"""The app's error pages (ccp.web.errors): the UI's 403/404/405 page or partial, and a service refusal that no view
showed in place; JSON surfaces keep their JSON whatever reaches the app-wide handlers."""

from __future__ import annotations

from ccp.services.errors import ServiceError
from tests.web.conftest import HX


def test_unknown_ui_paths_get_the_page_or_the_partial(client, login):
    login("viewer")
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "<html" in page.get_data(as_text=True)
    fragment = client.get("/no-such-page", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 404 and "<html" not in body and "404 Not Found." in body
    assert client.put("/rollouts").status_code == 405


def test_a_refusal_no_view_shows_is_the_message_partial_with_its_status(app, client, login, monkeypatch):
    import ccp.web.fleet

    def refuse(search):
        raise ServiceError("the fleet is resting", status=409, code="resting")

    monkeypatch.setattr(ccp.web.fleet, "fleet_rows", refuse)
    login("viewer")
    fragment = client.get("/", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 409 and "<html" not in body
    assert "409 Conflict.</strong> the fleet is resting" in body
    page = client.get("/")
    assert page.status_code == 409 and "<html" in page.get_data(as_text=True)


def test_json_surfaces_never_get_the_ui_page(client):
    resp = client.get("/api/no-such-thing")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
