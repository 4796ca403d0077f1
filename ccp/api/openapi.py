"""GET /api/openapi.json: a hand-written OpenAPI 3.1 description of the API (tests check it against the URL map)."""

from __future__ import annotations

from ccp.api.openapi_parts import ERR as _ERR, json_of as _json, ok as _ok, op as _op

from ccp import __version__
from ccp.api import openapi_intake
from ccp.api import openapi_awareness
from ccp.api import openapi_rollbacks
from ccp.api import openapi_backups
from ccp.api import openapi_agent_updates
from ccp.api.base import MAX_PER_PAGE, bp

_REF = {"name": "ref", "in": "path", "required": True, "description": "numeric id or slug",
        "schema": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": "^[a-z0-9][a-z0-9-]*$"}}
_RID = {"name": "rollout_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_UID = {"name": "upgrade_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
# (no maximum on purpose: any larger number is answered 404, which clients and fuzzers may rely on)
_PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10**9, "default": 1}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                                                    "default": 20}},
]
_NULLSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _page_of(item: str) -> dict:
    return {"type": "object", "required": ["items", "page", "per_page", "total"], "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"}}}


_INSTANCE_FIELDS = {
    "name": {"type": "string"}, "domain": {"type": "string"}, "driver": {"enum": ["remote", "local"]},
    "agent_url": _NULLSTR, "agent_key_id": _NULLSTR, "install_dir": _NULLSTR, "compose_project": {"type": "string"},
    "is_registered": {"type": "boolean"}, "image_tag": _NULLSTR, "template_set": {"type": "string"},
    "health_urls": {"type": "array", "items": {"type": "string"}},
    "vars": {"type": "object", "additionalProperties": {"type": "string"}},
}
_WRITE_ONLY = {
    "agent_key": {"type": ["string", "null"], "writeOnly": True, "description": "stored encrypted, never returned"},
    "secrets": {"type": ["object", "null"], "additionalProperties": {"type": "string"}, "writeOnly": True,
                "description": "provisioned tenants only; stored encrypted, only names are returned"},
}

_HELD = {"type": "array", "description": "tenants a hold keeps out, with the hold",
         "items": {"type": "object", "properties": {"instance": {"type": "string"}, "reason": {"type": "string"}}}}
_CONFIRMS = {
    "outsideWindowOk": {"type": "boolean", "default": False,
                        "description": "start although the tenant's maintenance window is closed (else 409 "
                                       "outside_window, details.nextOpen); audited"},
    "heldOk": {"type": "boolean", "default": False,
               "description": "start although the tenant is held (else 409 held); audited"},
}

_ROLLOUT_BODY = {"type": "object", "required": ["tag"], "additionalProperties": False, "properties": {
    "tag": {"type": "string", "description": "image tag to roll out"},
    "instances": {"type": "array", "minItems": 1, "items": {"type": "string"},
                  "description": "slugs, in wave order; absent: every instance (by slug)"},
    "canary": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1,
               "description": "tenants in the first wave"},
    "waveSize": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5,
                 "description": "tenants in each later wave"}}}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}},
    "Instance": {"type": "object", "required": ["id", "slug", "name", "secret_names", "has_agent_key"],
                 "properties": {"id": {"type": "integer"}, "slug": {"type": "string"}, **_INSTANCE_FIELDS,
                                "has_agent_key": {"type": "boolean"},
                                "secret_names": {"type": "array", "items": {"type": "string"}},
                                "agent_version": _NULLSTR, "agent_capabilities": {"type": "array"},
                                "last_seen_at": _TIME, "attention": _NULLSTR, "created_at": _TIME,
                                "updated_at": _TIME,
                                "window": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Window"}]},
                                "hold": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Hold"}]}}},
    "Window": {"type": "object", "required": ["cron", "minutes", "timezone", "open"], "properties": {
        "cron": {"type": "string"}, "minutes": {"type": "integer"}, "timezone": {"type": "string"},
        "label": {"type": "string"}, "open": {"type": "boolean", "description": "open now"},
        "endsAt": {**_TIME, "description": "while open: when it closes"},
        "nextOpen": {**_TIME, "description": "when it opens next"}}},
    "WindowRequest": {"type": "object", "required": ["cron", "minutes"], "additionalProperties": False, "properties": {
        "cron": {"type": "string", "maxLength": 100,
                 "description": "when the window opens: five cron fields read on the tenant's wall clock"},
        "minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "description": "how long it stays open"},
        "timezone": {"type": ["string", "null"], "description": "IANA time zone name (e.g. Europe/Berlin); "
                                                                "absent or null: UTC"}}},
    "Hold": {"type": "object", "required": ["reason", "until", "active"], "properties": {
        "reason": {"type": "string"}, "until": {**_TIME, "description": "null: until released"},
        "by": _NULLSTR, "active": {"type": "boolean", "description": "false once `until` has passed"},
        "sentence": {"type": "string"}}},
    "HoldRequest": {"type": "object", "required": ["reason"], "additionalProperties": False, "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
        "until": {"type": ["string", "null"], "format": "date-time",
                  "description": "RFC 3339 with an offset, in the future; absent or null: until released"}}},
    "InstanceCreate": {"type": "object", "required": ["slug"], "additionalProperties": False,
                       "properties": {"slug": {"type": "string"}, **_INSTANCE_FIELDS, **_WRITE_ONLY}},
    "InstanceUpdate": {"type": "object", "additionalProperties": False,
                       "properties": {**_INSTANCE_FIELDS, **_WRITE_ONLY}},
    "InstancePage": _page_of("Instance"),
    "ReleaseRequest": {"type": "object", "additionalProperties": False, "properties": {
        "imageTag": {"type": ["string", "null"], "description": "image tag; null or absent: the instance's own"},
        "plan": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$",
                 "description": "plan_hash of a preview: apply only if nothing changed since"}, **_CONFIRMS}},
    "StartRequest": {"type": "object", "additionalProperties": False, "properties": _CONFIRMS},
    "PreviewRequest": {"type": "object", "additionalProperties": False,
                       "properties": {"imageTag": {"type": ["string", "null"]}}},
    "Empty": {"type": "object", "additionalProperties": False, "maxProperties": 0},
    "Preview": {"type": "object", "required": ["instance", "tag", "plan_hash", "summary", "files"], "properties": {
        "instance": {"type": "string"}, "tag": _NULLSTR, "from_tag": _NULLSTR, "registered": {"type": "boolean"},
        "set": {"type": "object"}, "plan_hash": {"type": "string"}, "summary": {"type": "object"},
        "files": {"type": "array", "items": {"type": "object"}}, "coverage": {"type": "object"},
        "env_patch": {"type": "object"},
        "env": {"type": ["array", "null"], "description": ".env per key; old/new are null for secret keys",
                "items": {"type": "object", "required": ["key", "change", "secret"], "properties": {
                    "key": {"type": "string"}, "change": {"enum": ["added", "removed", "changed", "unchanged", "set"]},
                    "secret": {"type": "boolean"}, "old": _NULLSTR, "new": _NULLSTR}}},
        "env_other_keys": {"type": "array", "items": {"type": "string"}},
        "secrets_changed": {"type": "array", "items": {"type": "string"},
                            "description": "secret .env keys whose value this release changes"}}},
    "Upgrade": {"type": "object", "required": ["id", "instance", "kind", "status", "steps"], "properties": {
        "id": {"type": "integer"}, "instance": {"type": "string"}, "instance_id": {"type": "integer"},
        "kind": {"enum": ["release", "quick", "full", "rollback", "restore"]}, "status": {"type": "string"},
        "from_tag": _NULLSTR, "to_tag": _NULLSTR, "image_digest": _NULLSTR, "plan_hash": _NULLSTR,
        "rollback_of": {"type": ["integer", "null"], "description": "the earlier release this one rolls back to"},
        "backup_id": {"type": ["string", "null"], "description": "its data backup (restore: the one it restores)"},
        "backup": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Backup"}],
                   "description": "the backup it took, with its size and duration"},
        "actor": {"type": "string"},
        "error": _NULLSTR, "created_at": _TIME, "started_at": _TIME, "finished_at": _TIME,
        "duration_s": {"type": ["number", "null"]},
        "steps": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "status": {"type": "string"}, "started_at": _TIME, "finished_at": _TIME,
            "duration_s": {"type": ["number", "null"]}, "output_tail": _NULLSTR}}}}},
    "UpgradePage": _page_of("Upgrade"),
    "AuditEvent": {"type": "object", "required": ["id", "at", "actor", "action", "result"], "properties": {
        "id": {"type": "integer"}, "at": _TIME, "actor": {"type": "string"}, "action": {"type": "string"},
        "instance_id": {"type": ["integer", "null"]}, "target": _NULLSTR, "plan_hash": _NULLSTR,
        "result": {"type": "string"}, "detail": {"type": "object"}}},
    "AuditPage": _page_of("AuditEvent"),
    "RolloutRequest": {**_ROLLOUT_BODY, "properties": {**_ROLLOUT_BODY["properties"], "expect": {
        "type": "string", "pattern": "^[0-9a-f]{64}$",
        "description": "a preview's digest: the start is refused (409 preview_stale, nothing recorded) when the "
                       "tenants or waves changed since that preview"}}},
    "RolloutPreviewRequest": _ROLLOUT_BODY,
    "Rollout": {"type": "object", "required": ["id", "tag", "status", "waves", "skipped"], "properties": {
        "id": {"type": "integer"}, "tag": {"type": "string"},
        "image_digest": {**_NULLSTR, "description": "what the tag resolved to at the registry (receivers)"},
        "status": {"enum": ["running", "succeeded", "halted", "cancelled"]},
        "source": {"enum": ["api", "webhook", "ui"]}, "actor": {"type": "string"}, "error": _NULLSTR,
        "kind": {"enum": ["release", "rollback"]},
        "rollback_of": {"type": ["integer", "null"], "description": "kind rollback: the rollout it takes back"},
        "cancel_requested": {"type": "boolean"}, "created_at": _TIME, "finished_at": _TIME,
        "skipped": {"type": "array", "items": {"type": "string"}, "description": "slugs already on the tag"},
        "held": _HELD,
        "waves": {"type": "array", "items": {"type": "object", "properties": {
            "number": {"type": "integer"},
            "status": {"enum": ["pending", "running", "succeeded", "failed", "cancelled"]},
            "started_at": _TIME, "finished_at": _TIME,
            "tenants": {"type": "array", "items": {"type": "object", "properties": {
                "instance": {"type": "string"}, "upgrade_id": {"type": ["integer", "null"]},
                "status": {"type": "string"}, "error": _NULLSTR, "from_tag": _NULLSTR, "to_tag": _NULLSTR,
                "started_at": _TIME, "finished_at": _TIME, "duration_s": {"type": ["number", "null"]},
                "waits_until": {**_TIME, "description": "status waiting: when its maintenance window opens"}}}}}}}}},
    "RolloutPage": _page_of("Rollout"),
    "RolloutPreview": {"type": "object", "required": ["tag", "waves", "skipped", "tenants", "blocked"], "properties": {
        "tag": {"type": "string"}, "canary": {"type": "integer"}, "waveSize": {"type": "integer"},
        "tenants": {"type": "integer", "description": "tenants the rollout would upgrade"},
        "blocked": {"type": "integer", "description": "of those, tenants whose upgrade would not start or pass its "
                                                      "plan check as things stand"},
        "halts_at_wave": {"type": ["integer", "null"], "description": "first wave with a blocked tenant"},
        "skipped": {"type": "array", "items": {"type": "string"}, "description": "slugs already on the tag"},
        "held": _HELD,
        "elapsed_s": {"type": "number"},
        "digest": {"type": "string", "description": "binds a start to these tenants and waves (its `expect`)"},
        "waves": {"type": "array", "items": {"type": "object", "properties": {
            "number": {"type": "integer"}, "canary": {"type": "boolean"},
            "tenants": {"type": "array", "items": {"type": "object", "properties": {
                "instance": {"type": "string"}, "from_tag": _NULLSTR, "to_tag": {"type": "string"},
                "state": {"enum": ["ready", "agent_unavailable", "agent_too_old", "preview_failed", "timed_out",
                                   "deleted"]},
                "problem": _NULLSTR,
                "files": {"type": "object", "properties": {"modified": {"type": "integer"},
                                                           "created": {"type": "integer"}}},
                "secrets_changed": {"type": "array", "items": {"type": "string"},
                                    "description": "names of secret .env keys whose value would change"},
                "missing_env": {"type": "array", "items": {"type": "string"}},
                "blocked": {"type": "boolean"}, "plan_hash": _NULLSTR,
                "window": {**_NULLSTR,
                           "description": "outside its maintenance window now: its wave waits for it"},
                "busy": {**_NULLSTR, "description": "an upgrade of this tenant is queued or running now (blocks "
                                                    "the canary wave)"}}}}}}}}},
}

SCHEMAS.update(openapi_intake.SCHEMAS)  # receivers, deliveries, hooks (ccp.api.openapi_intake)
SCHEMAS.update(openapi_awareness.SCHEMAS)  # fleet findings, scans, schedules, channels (ccp.api.openapi_awareness)
SCHEMAS.update(openapi_rollbacks.SCHEMAS)  # release history and rollbacks (ccp.api.openapi_rollbacks)
SCHEMAS.update(openapi_backups.SCHEMAS)  # data backups and their restore (ccp.api.openapi_backups)
SCHEMAS.update(openapi_agent_updates.SCHEMAS)  # agents and their self-update (ccp.api.openapi_agent_updates)

_E = {"400": _ERR, "404": _ERR, "409": _ERR, "413": _ERR, "415": _ERR, "422": _ERR}
_UPGRADE_ERRORS = {**_E, "502": _ERR}

PATHS = {
    "/api/instances": {
        "get": _op("List instances", "read", {**_ok("InstancePage"), "400": _ERR}, params=_PAGING),
        "post": _op("Create an instance", "admin", {**_ok("Instance", "201", "Created"), **_E},
                    body="InstanceCreate", body_required=True),
    },
    "/api/instances/{ref}": {
        "get": _op("Get an instance", "read", {**_ok("Instance"), "404": _ERR}, params=[_REF]),
        "patch": _op("Update an instance", "admin", {**_ok("Instance"), **_E}, params=[_REF],
                     body="InstanceUpdate", body_required=True),
        "delete": _op("Delete an instance", "admin", {"204": {"description": "Deleted"}, "404": _ERR, "409": _ERR},
                      params=[_REF]),
    },
    "/api/instances/{ref}/upgrade-release/preview": {
        "post": _op("Preview an Upgrade to Release (read-only)", "operate", {**_ok("Preview"), **_UPGRADE_ERRORS},
                    params=[_REF], body="PreviewRequest"),
    },
    "/api/instances/{ref}/upgrade-release": {
        "post": _op("Start an Upgrade to Release", "operate",
                    {**_ok("Upgrade", "202", "Queued"), **_UPGRADE_ERRORS}, params=[_REF], body="ReleaseRequest"),
    },
    "/api/instances/{ref}/quick-upgrade": {
        "post": _op("Start a Quick Upgrade (pull + up)", "operate",
                    {**_ok("Upgrade", "202", "Queued"), **_UPGRADE_ERRORS}, params=[_REF], body="StartRequest"),
    },
    "/api/instances/{ref}/upgrade-now": {
        "post": _op("Start Upgrade Now (the tenant's scripts/upgrade.sh)", "operate",
                    {**_ok("Upgrade", "202", "Queued"), **_UPGRADE_ERRORS}, params=[_REF], body="StartRequest"),
    },
    "/api/instances/{ref}/window": {
        "put": _op("Set the maintenance window (rollouts and receivers wait for it; audited)", "operate",
                   {**_ok("Instance"), **_E}, params=[_REF], body="WindowRequest", body_required=True),
        "delete": _op("Remove the maintenance window (audited)", "operate", {**_ok("Instance"), "404": _ERR},
                      params=[_REF]),
    },
    "/api/instances/{ref}/hold": {
        "put": _op("Hold the tenant at its tag (rollouts and receivers skip it; audited)", "operate",
                   {**_ok("Instance"), **_E}, params=[_REF], body="HoldRequest", body_required=True),
        "delete": _op("Release the hold (audited)", "operate", {**_ok("Instance"), "404": _ERR}, params=[_REF]),
    },
    "/api/instances/{ref}/upgrades": {
        "get": _op("An instance's upgrades", "read", {**_ok("UpgradePage"), "400": _ERR, "404": _ERR},
                   params=[_REF, *_PAGING]),
    },
    "/api/upgrades/{upgrade_id}": {
        "get": _op("Get an upgrade (status, steps, timings)", "read", {**_ok("Upgrade"), "404": _ERR},
                   params=[_UID]),
    },
    "/api/upgrades/{upgrade_id}/cancel": {
        "post": _op("Cancel an upgrade", "operate", {**_ok("Upgrade"), **_E}, params=[_UID], body="Empty"),
    },
    "/api/audit": {
        "get": _op("The audit log", "admin", {**_ok("AuditPage"), "400": _ERR, "404": _ERR}, params=[
            {"name": "instance", "in": "query", "schema": {"type": "string"}, "description": "id or slug"},
            {"name": "actor", "in": "query", "schema": {"type": "string"},
             "description": "exact actor, or a prefix ending in '*'"},
            *_PAGING]),
    },
    "/api/rollouts": {
        "get": _op("List rollouts", "read", {**_ok("RolloutPage"), "400": _ERR}, params=_PAGING),
        "post": _op("Start a rollout of a tag in waves", "operate", {**_ok("Rollout", "202", "Started"), **_E},
                    body="RolloutRequest", body_required=True),
    },
    "/api/rollouts/preview": {
        "post": _op("Preview a rollout (read-only): per tenant what would change, and the waves", "operate",
                    {**_ok("RolloutPreview"), **_E}, body="RolloutPreviewRequest", body_required=True),
    },
    "/api/rollouts/{rollout_id}": {
        "get": _op("Get a rollout (waves, tenants, why it halted)", "read", {**_ok("Rollout"), "404": _ERR},
                   params=[_RID]),
    },
    "/api/rollouts/{rollout_id}/cancel": {
        "post": _op("Cancel a rollout (no further wave starts)", "operate", {**_ok("Rollout"), **_E},
                    params=[_RID], body="Empty"),
    },
    "/api/webhooks/ci": {
        "post": {"summary": "CI webhook: start a rollout (Standard Webhooks, signed with CCP_WEBHOOK_SECRET, no token)",
                 "description": "Signed as https://www.standardwebhooks.com prescribes (docs/api.md has examples). "
                                "401 `bad_signature` (missing or wrong signature headers; the old X-CCP-Signature "
                                "is refused) or `stale_delivery` (timestamp more than 300 s off): nothing is stored. "
                                "Every delivery whose signature checks out is recorded with its outcome, a "
                                "malformed body included (400). 404 `webhooks_disabled` without a secret.",
                 "security": [{"ciSignature": []}],
                 "parameters": [
                     {"name": "webhook-id", "in": "header", "required": True,
                      "description": "unique id of this delivery (signed); a repeated id is refused (409)",
                      "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$"}},
                     {"name": "webhook-timestamp", "in": "header", "required": True,
                      "description": "Unix time in seconds when the delivery was signed; refused (401) when more "
                                     "than 300 s off CCP's clock either way",
                      "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,11}$"}},
                 ],
                 "requestBody": {"required": True, "content": _json("RolloutRequest")},
                 "responses": {**_ok("Rollout", "202", "Started"), **_E, "401": _ERR, "503": _ERR}},
    },
    **openapi_intake.PATHS,
    **openapi_awareness.PATHS,
    **openapi_rollbacks.PATHS,
    **openapi_backups.PATHS,
    **openapi_agent_updates.PATHS,
    "/api/openapi.json": {
        "get": {"summary": "This document", "security": [], "responses": {
            "200": {"description": "OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}
        }},
    },
}


def openapi_document() -> dict:
    """The OpenAPI 3.1 document for /api."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "CCP API", "version": __version__,
                 "description": "Scopes: read (GET), operate (previews, upgrades, cancel), admin (instance "
                                "create/update/delete, audit). See docs/api.md."},
        "servers": [{"url": "/"}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "ciSignature": {"type": "apiKey", "in": "header", "name": "webhook-signature",
                                "description": "v1,<base64 HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<raw "
                                               "body>'>, keyed with CCP_WEBHOOK_SECRET (a whsec_<base64> secret: the "
                                               "decoded bytes); several space-separated signatures are allowed"},
                **openapi_intake.SECURITY_SCHEMES,
            },
            "schemas": SCHEMAS,
            "responses": {"Error": {"description": "Error", "content": _json("Error")}},
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI document (public: it describes the API, it holds no data)."""
    return openapi_document()
