"""The OpenAPI document is valid and matches the URL map (a route under /api missing from it fails here)."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from ccp.api.openapi import openapi_document

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        out |= {(m.lower(), path) for m in rule.methods - IGNORED_METHODS}
    return out


def test_document_is_valid_openapi(app, client):
    doc = client.get("/api/openapi.json").get_json()
    validate(doc)
    assert doc == openapi_document()


def test_every_route_is_documented_and_nothing_else(app):
    documented = {(m, p) for p, ops in openapi_document()["paths"].items() for m in ops}
    assert _routes(app) == documented


def test_documented_scopes_match_the_views(app):
    doc = openapi_document()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - IGNORED_METHODS:
            op = doc["paths"][path][method.lower()]
            assert op.get("x-scope") == getattr(view, "required_permission", None), (method, path)
