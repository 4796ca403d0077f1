"""The OpenAPI description of release intake: receivers, the deliveries log and `POST /api/hooks/<receiver>`
(merged into the document by ccp.api.openapi)."""

from __future__ import annotations

from ccp.api.openapi_parts import ERR as _ERR, ok as _ok, op as _op

from ccp.models import DECISIONS, RECEIVER_KINDS

_NULLSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_NAME = {"name": "name", "in": "path", "required": True, "description": "the receiver's name",
         "schema": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": "^[a-z0-9][a-z0-9-]*$"}}
_RECEIVER = {"name": "receiver", "in": "path", "required": True, "description": "the receiver's name",
             "schema": {"type": "string", "minLength": 1, "maxLength": 63}}
_SECRET = {"name": "secret", "in": "path", "required": True,
           "description": "Docker Hub and Quay receivers: the secret CCP made (shown once, at creation or rotation)",
           "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
_DID = {"name": "delivery_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10**9, "default": 1}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
]
_E = {"400": _ERR, "404": _ERR, "409": _ERR, "413": _ERR, "415": _ERR, "422": _ERR}

_FIELDS = {
    "repository": {"type": ["string", "null"], "maxLength": 255,
                   "description": "what the provider's events name (owner/repo, namespace/name); default: the "
                                  "image's path"},
    "image": {"type": "string", "maxLength": 255, "description": "the image repository CCP resolves tags at, e.g. "
                                                                 "ghcr.io/acme/app (no tag)"},
    "registry_username": {"type": ["string", "null"], "maxLength": 200},
    "instances": {"type": "array", "items": {"type": "string"}, "description": "slugs; empty: every instance"},
    "semver_range": {"type": ["string", "null"], "maxLength": 200, "description": "npm-style range, e.g. ^1.4"},
    "tag_include": {"type": ["string", "null"], "maxLength": 200, "description": "regex a tag must match whole"},
    "tag_exclude": {"type": ["string", "null"], "maxLength": 200, "description": "regex a tag must not match"},
    "min_age_s": {"type": ["integer", "null"], "minimum": 0, "maximum": 604800,
                  "description": "an image must be this old (from its config's created time) to be released"},
    "canary": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
    "wave_size": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
    "enabled": {"type": "boolean", "default": True},
}
_PASSWORD = {"registry_password": {"type": ["string", "null"], "maxLength": 1000, "writeOnly": True,
                                   "description": "stored encrypted, never returned"}}
_RECEIVER_OUT = {
    "id": {"type": "integer"}, "name": {"type": "string"}, "kind": {"enum": list(RECEIVER_KINDS)},
    "url": {"type": "string", "description": "where the provider sends events ({secret}: Docker Hub/Quay)"},
    "has_secret": {"type": "boolean"}, "has_registry_password": {"type": "boolean"}, **_FIELDS,
    "created_at": _TIME, "updated_at": _TIME,
}


def _page_of(item: str) -> dict:
    return {"type": "object", "required": ["items", "page", "per_page", "total"], "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"}}}


SCHEMAS = {
    "Receiver": {"type": "object", "required": ["id", "name", "kind", "url", "enabled"], "properties": _RECEIVER_OUT},
    "ReceiverCreated": {"type": "object", "required": ["id", "name", "kind", "url", "secret"], "properties": {
        **_RECEIVER_OUT, "secret": {**_NULLSTR, "description": "shown this once (null when you gave it)"}}},
    "ReceiverPage": _page_of("Receiver"),
    "ReceiverCreate": {"type": "object", "required": ["name", "kind", "image"], "additionalProperties": False,
                       "properties": {"name": {"type": "string", "maxLength": 63},
                                      "kind": {"enum": list(RECEIVER_KINDS)},
                                      "secret": {"type": ["string", "null"], "maxLength": 200, "writeOnly": True,
                                                 "description": "empty: CCP makes one (always for Docker Hub/Quay)"},
                                      **_FIELDS, **_PASSWORD}},
    "ReceiverUpdate": {"type": "object", "additionalProperties": False, "properties": {**_FIELDS, **_PASSWORD}},
    "SecretRotation": {"type": "object", "additionalProperties": False, "properties": {
        "secret": {"type": ["string", "null"], "maxLength": 200, "writeOnly": True}}},
    "Delivery": {"type": "object", "required": ["id", "source", "event", "decision"], "properties": {
        "id": {"type": "integer"}, "source": {"type": "string"}, "event": {"type": "string"},
        "receiver": _NULLSTR, "delivery_id": _NULLSTR, "received_at": _TIME, "status": {"type": "string"},
        "decision": {"enum": [*DECISIONS, None]}, "reason": _NULLSTR, "repository": _NULLSTR, "tag": _NULLSTR,
        "digest": _NULLSTR, "resolved": {"type": ["object", "null"]}, "rollout_id": {"type": ["integer", "null"]},
        "replay_of": {"type": ["integer", "null"]}, "decided_at": _TIME,
        "duplicate": {"type": "boolean", "description": "intake only: a repeat of an earlier delivery id"}}},
    "DeliveryPage": _page_of("Delivery"),
    "HookPayload": {"type": "object", "description": "the provider's own JSON event (docs/webhooks.md)"},
}


def _hook(params) -> dict:
    return {"post": {
        "summary": "A release event for a receiver (the provider's signature, token or URL secret; no API token)",
        "description": "Verified as the receiver's kind prescribes (docs/webhooks.md). 404: no such enabled "
                       "receiver; 401 `bad_signature`: unsigned or forged. Neither stores anything. A verified "
                       "delivery is kept with its decision: 202 while pending (its coalescing window), 200 once "
                       "decided (ignored: the reason); 400 `invalid_payload` is kept as rejected.",
        "security": [{"receiverSecret": []}], "parameters": params,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/HookPayload"}}}},
        "responses": {**_ok("Delivery", "200", "Decided"), **_ok("Delivery", "202", "Pending"),
                      "204": {"description": "Noise acknowledged, nothing stored (a registry's pulls)"}, "400": _ERR,
                      "401": _ERR, "404": _ERR, "413": _ERR}}}


PATHS = {
    "/api/receivers": {
        "get": _op("List receivers", "admin", {**_ok("ReceiverPage"), "400": _ERR}, params=_PAGING),
        "post": _op("Create a receiver (its secret and URL are in this answer only)", "admin",
                    {**_ok("ReceiverCreated", "201", "Created"), **_E}, body="ReceiverCreate", body_required=True),
    },
    "/api/receivers/{name}": {
        "get": _op("Get a receiver", "admin", {**_ok("Receiver"), "404": _ERR}, params=[_NAME]),
        "patch": _op("Change a receiver (enabled: false turns it off)", "admin", {**_ok("Receiver"), **_E},
                     params=[_NAME], body="ReceiverUpdate", body_required=True),
    },
    "/api/receivers/{name}/rotate-secret": {
        "post": _op("Replace a receiver's secret (the new one is in this answer only)", "admin",
                    {**_ok("ReceiverCreated"), **_E}, params=[_NAME], body="SecretRotation"),
    },
    "/api/deliveries": {
        "get": _op("Webhook deliveries with their decision, newest first", "read",
                   {**_ok("DeliveryPage"), "400": _ERR, "404": _ERR}, params=[
                       {"name": "receiver", "in": "query", "schema": {"type": "string"}, "description": "name"},
                       {"name": "decision", "in": "query", "schema": {"enum": list(DECISIONS)}}, *_PAGING]),
    },
    "/api/deliveries/{delivery_id}/replay": {
        "post": _op("Decide a receiver's delivery again, now (a new delivery)", "admin", {**_ok("Delivery"), **_E},
                    params=[_DID], body="Empty"),
    },
    "/api/hooks/{receiver}": _hook([_RECEIVER]),
    "/api/hooks/{receiver}/{secret}": _hook([_RECEIVER, _SECRET]),
}

SECURITY_SCHEMES = {
    "receiverSecret": {"type": "apiKey", "in": "header", "name": "X-Hub-Signature-256",
                       "description": "per receiver kind: X-Hub-Signature-256 (GitHub), X-Gitlab-Token or "
                                      "webhook-signature (GitLab), X-Gitea-Signature / X-Forgejo-Signature, "
                                      "Authorization (Distribution, Harbor), or the secret in the URL path (Docker "
                                      "Hub, Quay); see docs/webhooks.md"},
}
