"""The OpenAPI description of data backups and their operator-confirmed restore (ccp.api.upgrades.restore), merged
into the document by ccp.api.openapi."""

from __future__ import annotations

from ccp.api.openapi_parts import ERR as _ERR

_UID = {"name": "upgrade_id", "in": "path", "required": True, "description": "the upgrade that took the backup",
        "schema": {"type": "integer", "minimum": 1}}

SCHEMAS = {
    "Backup": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string", "description": "the agent's backup id: <upgrade id>-<UTC time>"},
        "size_bytes": {"type": ["integer", "null"], "description": "what the set's backup hook wrote"},
        "duration_s": {"type": ["number", "null"], "description": "how long the backup hook ran"}}},
    "RestoreRequest": {"type": "object", "additionalProperties": False, "properties": {
        "confirm": {"type": "boolean", "description": "must be true: the restore overwrites the tenant's current "
                                                      "data with the backup's (else 422 confirmation_required)"}}},
}

PATHS = {
    "/api/upgrades/{upgrade_id}/restore": {
        "post": {
            "summary": "Restore the data backup an upgrade took (the template set's restore hook, then up and "
                       "verify); operator-confirmed, audited",
            "security": [{"bearer": []}], "x-scope": "operate", "parameters": [_UID],
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/RestoreRequest"}}}},
            "responses": {
                "202": {"description": "Queued: the new \"restore\" upgrade", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Upgrade"}}}},
                "400": _ERR, "401": _ERR, "403": _ERR, "404": _ERR, "409": _ERR, "413": _ERR, "415": _ERR,
                "422": _ERR, "502": _ERR},
        },
    },
}
