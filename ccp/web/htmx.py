"""The one place that decides "fragment or full page" for an htmx request, and how polled responses end.

Rules (htmx docs, django-htmx middleware):
- a request wants a fragment when it carries `HX-Request: true`, unless it is boosted (`HX-Boosted`) or a history
  restore (`HX-History-Restore-Request`) - those replace the whole page and must get the full page;
- every response that can differ by `HX-Request` says so with `Vary: HX-Request` (caches must not mix them up);
- a polled partial is `Cache-Control: no-store` and answers HTTP 286 (htmx stops polling) with its final markup.

Templates see `fragment` (true when the partial is rendered alone for htmx).
"""

from __future__ import annotations

from flask import Response, make_response, render_template, request
from flask import redirect as flask_redirect

STOP_POLLING = 286


def wants_fragment(headers=None) -> bool:
    """True when the current request (or these request headers) is an htmx request that swaps part of a page (not
    boosted, not history)."""
    if headers is None:
        headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
        and headers.get("HX-History-Restore-Request") != "true"
    )


def render(page: str, partial: str, status: int = 200, **context) -> Response:
    """Render `partial` alone for a fragment request, else the full `page` (which includes that same partial)."""
    fragment = wants_fragment()
    body = render_template(partial if fragment else page, fragment=fragment, **context)
    return vary(make_response(body, status))


def redirect(location: str) -> Response:
    """Redirect a plain form post; tell htmx to navigate instead (204 + HX-Redirect: it loads the new page)."""
    if wants_fragment():
        response = vary(flask_redirect(location))
        response.status_code = 204
        response.headers["HX-Redirect"] = location
        return response
    return flask_redirect(location)


def vary(response: Response) -> Response:
    """Mark a response as depending on the HX-Request header."""
    if "Vary" in response.headers:
        response.vary.add("HX-Request")
    else:
        response.headers["Vary"] = "HX-Request"  # the common case, without parsing an empty header set
    return response


def polled(response: Response, *, final: bool) -> Response:
    """Make a polled response uncacheable; when `final`, answer 286 so htmx stops polling and swaps the markup."""
    response.headers["Cache-Control"] = "no-store"
    if final and response.status_code == 200 and wants_fragment():
        response.status_code = STOP_POLLING
    return response
