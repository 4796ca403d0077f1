"""The one place that decides "fragment or full page" for an htmx request, and how polled responses end.

Rules (htmx docs, django-htmx middleware):
- a request wants a fragment when it carries `HX-Request: true`, unless it is boosted (`HX-Boosted`) or a history
  restore (`HX-History-Restore-Request`) - those replace the whole page and must get the full page;
- every response that can differ by `HX-Request` says so with `Vary: HX-Request` (caches must not mix them up);
- a polled partial is `Cache-Control: no-store` and answers HTTP 286 (htmx stops polling) with its final markup.

Templates see `fragment` (true when the partial is rendered alone for htmx).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from flask import Response, current_app, make_response, render_template, request
from flask import redirect as flask_redirect

STOP_POLLING = 286
FRAGMENT_CACHE_SIZE = 512  # distinct rendered fragments kept per app (each a few kB)


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


def render(page: str, partial: str, status: int = 200, *, cache_key: Hashable | None = None,
           make_context: Callable[[], dict] | None = None, **context) -> Response:
    """Render `partial` alone for a fragment request, else the full `page` (which includes that same partial).

    `make_context` returns more context; it is only called when something is rendered. With `cache_key`, a
    fragment's markup is rendered once per distinct key and reused (polled widgets mostly re-render unchanged
    data): the key must cover everything the partial shows, the data and whatever it uses from the context
    processors (e.g. the user's permissions). Full pages are always rendered afresh."""
    app, req = current_app._get_current_object(), request._get_current_object()  # polled: ~1 µs per lookup
    fragment = wants_fragment(req.headers)
    cache = None
    if fragment and cache_key is not None and not app.jinja_env.auto_reload:  # auto_reload: templates being edited
        cache = app.extensions.setdefault("ccp_fragments", {})
        cache_key = (partial, req.script_root, cache_key)
        body = cache.get(cache_key)
        if body is not None:
            return vary(app.response_class(body, status))
    if make_context is not None:
        context.update(make_context())
    body = render_template(partial if fragment else page, fragment=fragment, **context)
    if cache is not None:
        if len(cache) >= FRAGMENT_CACHE_SIZE:
            cache.clear()  # a simple bound: the next polls re-render what is still being watched
        cache[cache_key] = body
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
