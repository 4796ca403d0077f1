"""URL converters for ids and instance refs, shared by the UI and the API.

Werkzeug's own `int` converter matches `\\d+`, which in Python also matches non-ASCII digits (`١`, `²`, `①`) and
numbers past the 32-bit id columns; these converters match ASCII only, by the patterns in ccp.rules, so anything else
is simply not a route (404) and never reaches a view or the database.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import BaseConverter, ValidationError

from ccp import rules


class IdConverter(BaseConverter):
    """`<id:name>`: a row id, 1 to 2**31-1 in ASCII digits without leading zeros (an int for the view).

    The range is in the pattern itself, not only in `to_python`: Werkzeug answers a path whose converter refuses it
    with 405 when another rule of the same path (a GET beside this POST) matched by pattern, instead of 404."""

    regex = (r"(?:[1-9][0-9]{0,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}"
             r"|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])")

    def to_python(self, value: str) -> int:
        parsed = rules.parse_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value) -> str:
        return str(int(value))


class SlugConverter(BaseConverter):
    """`<slug:name>`: an instance slug (ccp.rules.SLUG)."""

    regex = rules.SLUG.pattern


class RefConverter(BaseConverter):
    """`<ref:name>`: an instance's numeric id or its slug (ASCII; the view tries the id first)."""

    regex = rules.SLUG.pattern


def init_app(app: Flask) -> None:
    """Register the converters; must run before any blueprint is registered."""
    app.url_map.converters.update(id=IdConverter, slug=SlugConverter, ref=RefConverter)
