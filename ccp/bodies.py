"""Reading request bodies safely, for the web app and the agent alike.

Two traps this closes:

- Size. Werkzeug caps a streamed body (`Transfer-Encoding: chunked`, no Content-Length) at `max_content_length` by
  silently *stopping* there, so an over-limit body was cut, parsed and acted on. `read_body` reads one byte past the
  limit and refuses the request with 413 when that byte exists, whatever the framing.
- Depth. Python's json module raises RecursionError (not ValueError) for deeply nested input, which became a 500.
  `parse_json` turns that, non-standard constants (NaN, Infinity), floats that overflow and nesting past MAX_DEPTH
  into one ValueError.
"""

from __future__ import annotations

import json

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

MAX_DEPTH = 32  # no CCP or agent body nests deeper than a handful of levels


class BodyTooLarge(RequestEntityTooLarge):
    """The body is over the limit (however it was framed); nothing was read into a view."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


def read_body(request: Request, limit: int) -> bytes:
    """The whole body (cached on the request for later form or JSON parsing), or BodyTooLarge past `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    request.max_content_length = limit + 1  # one byte more, so a streamed body past the limit is seen, not cut
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise BodyTooLarge(limit) from None
    if len(data) > limit:
        raise BodyTooLarge(limit)
    return data


def parse_json(raw: bytes) -> object:
    """Parse a JSON document (UTF-8). Raises ValueError for invalid JSON, NaN/Infinity, or nesting past MAX_DEPTH."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # bad syntax or UTF-8, NaN/Infinity, 1e999, an integer of over 4300 digits
        raise ValueError(f"not valid JSON: {str(exc)[:200]}") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number too large for a float")
    return value


def _depth_exceeds(value: object, limit: int) -> bool:
    """True when containers nest more than `limit` deep (iterative: a deep value must not recurse here either)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


_BODYLESS = ("GET", "HEAD", "OPTIONS")


def init_app(app) -> None:
    """Read (and cap) every request's body before any view or form parser sees it; 413 past CCP_MAX_BODY."""
    settings = app.config["CCP"]

    @app.before_request
    def _capped_body() -> None:
        from flask import request

        if request.method in _BODYLESS and not request.content_length and "Transfer-Encoding" not in request.headers:
            return  # the polled GETs: nothing to read, and this path is counted in microseconds (bench_status)
        read_body(request, settings.max_body_bytes)
