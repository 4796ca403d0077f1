"""The OpenAPI description of release history and rollbacks (ccp.api.rollbacks), merged into the document by
ccp.api.openapi."""

from __future__ import annotations

from ccp.api.openapi_parts import ERR as _ERR, ok as _ok, op as _op

_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLSTR = {"type": ["string", "null"]}
_E = {"400": _ERR, "404": _ERR, "409": _ERR, "413": _ERR, "415": _ERR, "422": _ERR}
_REF = {"name": "ref", "in": "path", "required": True, "description": "numeric id or slug",
        "schema": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": "^[a-z0-9][a-z0-9-]*$"}}
_UID = {"name": "upgrade_id", "in": "path", "required": True, "description": "the release's upgrade id",
        "schema": {"type": "integer", "minimum": 1}}
_RID = {"name": "rollout_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_SIZE = {"type": "integer", "minimum": 1, "maximum": 1000}
_CONFIRM = {"outsideWindowOk": {"type": "boolean", "description": "confirm a start outside the maintenance window"},
            "heldOk": {"type": "boolean", "description": "confirm a start of a held tenant"}}


_RELEASE = {"type": "object", "required": ["upgrade_id", "tag", "current", "recorded"], "properties": {
    "upgrade_id": {"type": "integer"}, "tag": _NULLSTR, "from_tag": _NULLSTR, "image_digest": _NULLSTR,
    "current": {"type": "boolean", "description": "the release the tenant runs now (the newest)"},
    "recorded": {"type": "boolean", "description": "false for releases applied before the history was recorded: "
                                                   "no set and no file hashes"},
    "set": {"type": ["object", "null"], "properties": {"name": {"type": "string"}, "version": {"type": "string"}}},
    "file_hashes": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                    "description": "relpath -> sha256 of each rendered file (a provisioned tenant's .env left out)"},
    "actor": {"type": "string"}, "applied_at": _TIME,
    "rollback_of": {"type": ["integer", "null"], "description": "the earlier release this one rolled back to"},
    "rollout_id": {"type": ["integer", "null"]}}}

SCHEMAS = {
    "Release": _RELEASE,
    "ReleaseHistory": {"type": "object", "required": ["instance", "items"], "properties": {
        "instance": {"type": "string"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Release"}}}},
    "RollbackPreview": {"type": "object", "required": ["rollback_of", "preview"], "properties": {
        "rollback_of": {"$ref": "#/components/schemas/Release"},
        "set_changed": {"type": "boolean", "description": "the template set's version differs from the release's"},
        "identical": {"type": ["boolean", "null"], "description": "every file will be what the release put there "
                                                                  "(null: the release's files were not recorded)"},
        "drift": {"type": ["array", "null"], "items": {"type": "object", "properties": {
            "path": {"type": "string"}, "change": {"enum": ["differs", "new", "gone"]}}}},
        "preview": {"$ref": "#/components/schemas/Preview"}}},
    "RollbackRequest": {"type": "object", "additionalProperties": False, "required": ["plan"], "properties": {
        "plan": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "plan_hash of the rollback preview"},
        **_CONFIRM}},
    "RolloutRollbackRequest": {"type": "object", "additionalProperties": False, "properties": {
        "canary": {**_SIZE, "default": 1}, "waveSize": {**_SIZE, "default": 5},
        "expect": {"type": "string", "description": "digest of the preview being confirmed"}}},
    "RolloutRollbackPreviewRequest": {"type": "object", "additionalProperties": False, "properties": {
        "canary": {**_SIZE, "default": 1}, "waveSize": {**_SIZE, "default": 5}}},
    "RolloutRollbackPlan": {"type": "object", "required": ["rollback_of", "waves", "skipped", "digest"],
                            "properties": {
        "rollback_of": {"type": "integer"}, "canary": {"type": "integer"}, "waveSize": {"type": "integer"},
        "tenants": {"type": "integer"}, "digest": {"type": "string"},
        "running_rollout_id": {"type": ["integer", "null"],
                               "description": "the rollout running now: one runs at a time, the rollback waits"},
        "waves": {"type": "array", "items": {"type": "object", "properties": {
            "number": {"type": "integer"}, "canary": {"type": "boolean"},
            "tenants": {"type": "array", "items": {"type": "object", "properties": {
                "instance": {"type": "string"}, "from_tag": _NULLSTR, "to_tag": {"type": "string"},
                "upgrade_id": {"type": "integer"}, "rollback_of": {"type": ["integer", "null"]},
                "image_digest": _NULLSTR}}}}}},
        "skipped": {"type": "array", "items": {"type": "object", "properties": {
            "instance": {"type": "string"}, "reason": {"type": "string"}}}}}},
}

PATHS = {
    "/api/instances/{ref}/releases": {
        "get": _op("A tenant's release history (newest first; the first is current)", "read",
                   {**_ok("ReleaseHistory"), "400": _ERR, "404": _ERR}, params=[_REF]),
    },
    "/api/instances/{ref}/releases/{upgrade_id}/rollback/preview": {
        "get": _op("Preview rolling a tenant back to an earlier release (read-only)", "operate",
                   {**_ok("RollbackPreview"), "400": _ERR, "404": _ERR, "409": _ERR, "422": _ERR, "502": _ERR},
                   params=[_REF, _UID]),
    },
    "/api/instances/{ref}/releases/{upgrade_id}/rollback": {
        "post": _op("Roll a tenant back to an earlier release (bound to the preview's plan)", "operate",
                    {**_ok("Upgrade", "202", "Queued"), **_E, "502": _ERR}, params=[_REF, _UID],
                    body="RollbackRequest"),
    },
    "/api/rollouts/{rollout_id}/rollback/preview": {
        "post": _op("Preview rolling a finished rollout back (read-only)", "operate",
                    {**_ok("RolloutRollbackPlan"), **_E}, params=[_RID], body="RolloutRollbackPreviewRequest"),
    },
    "/api/rollouts/{rollout_id}/rollback": {
        "post": _op("Roll a finished rollout back: each tenant it changed to its previous tag, in waves", "operate",
                    {**_ok("Rollout", "202", "Started"), **_E}, params=[_RID], body="RolloutRollbackRequest"),
    },
}
