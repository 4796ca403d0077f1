"""The pieces every OpenAPI module (ccp.api.openapi and its openapi_* parts) builds operations from: the error
response, a JSON body or answer by schema name, a bearer-token operation with its scope, an OK answer."""

from __future__ import annotations

ERR = {"$ref": "#/components/responses/Error"}


def json_of(schema: str) -> dict:
    """`content` of a JSON body or answer of the named schema."""
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def op(summary: str, scope: str, responses: dict, *, params=(), body: str | None = None,
       body_required: bool = False) -> dict:
    """An operation behind a bearer token of `scope` (401 and 403 added), with an optional JSON body."""
    operation = {"summary": summary, "security": [{"bearer": []}], "x-scope": scope, "parameters": list(params),
                 "responses": {**responses, "401": ERR, "403": ERR}}
    if body:
        operation["requestBody"] = {"required": body_required, "content": json_of(body)}
    return operation


def ok(schema: str, code: str = "200", description: str = "OK") -> dict:
    """A successful answer (`code`) carrying the named schema."""
    return {code: {"description": description, "content": json_of(schema)}}
