"""The OpenAPI description of agent updates (ccp.api.agent_updates), merged into the document by ccp.api.openapi."""

from __future__ import annotations

from ccp.api.openapi_parts import ERR as _ERR, ok as _ok, op as _op

_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLSTR = {"type": ["string", "null"]}
_E = {"400": _ERR, "409": _ERR, "413": _ERR, "415": _ERR, "422": _ERR, "503": _ERR}
_RID = {"name": "rollout_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_SIZE = {"type": "integer", "minimum": 1, "maximum": 1000}
_STRS = {"type": "array", "items": {"type": "string"}}


_OPTIONS = {
    "canary": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 1,
               "description": "agents in the first wave (0: no canary wave)"},
    "waveSize": {**_SIZE, "default": 5},
    "deadlineS": {"type": "integer", "minimum": 10, "maximum": 900, "default": 120,
                  "description": "seconds an agent has to come back answering the new version and be confirmed"},
    "agents": {"type": "array", "minItems": 1, "items": {"type": "string"},
               "description": "only these agent URLs (default: every agent of the fleet)"},
}
_AGENT = {"type": "object", "required": ["url", "tenants", "agent_update"], "properties": {
    "url": {"type": "string"}, "tenants": _STRS, "version": _NULLSTR,
    "protocol": {"type": ["integer", "null"]}, "capabilities": _STRS,
    "reachable": {"type": ["boolean", "null"]},
    "agent_update": {"type": "boolean", "description": "the agent reports the agent.update capability"},
    "seen_at": _TIME}}
_LEFT_OUT = {"type": "array", "items": {"type": "object", "properties": {
    "url": {"type": "string"}, "reason": {"type": "string"}}}}

SCHEMAS = {
    "Agent": _AGENT,
    "AgentList": {"type": "object", "required": ["items"], "properties": {
        "target_version": {**_NULLSTR, "description": "the agent version an update would install (CCP's)"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Agent"}}}},
    "AgentUpdatePreviewRequest": {"type": "object", "additionalProperties": False, "properties": _OPTIONS},
    "AgentUpdateRequest": {"type": "object", "additionalProperties": False, "properties": {
        **_OPTIONS, "expect": {"type": "string", "description": "digest of the preview being confirmed"}}},
    "AgentUpdatePlan": {"type": "object", "required": ["target_version", "sha256", "waves", "digest"], "properties": {
        "target_version": {"type": "string"}, "sha256": {"type": "string"}, "wheel_bytes": {"type": "integer"},
        "canary": {"type": "integer"}, "waveSize": {"type": "integer"}, "deadlineS": {"type": "integer"},
        "digest": {"type": "string"},
        "waves": {"type": "array", "items": {"type": "object", "properties": {
            "number": {"type": "integer"}, "canary": {"type": "boolean"},
            "agents": {"type": "array", "items": {"$ref": "#/components/schemas/Agent"}}}}},
        "skipped": _LEFT_OUT, "unable": _LEFT_OUT}},
    "AgentUpdate": {"type": "object", "required": ["id", "target_version", "status", "agents"], "properties": {
        "id": {"type": "integer"}, "target_version": {"type": "string"}, "sha256": {"type": "string"},
        "status": {"enum": ["running", "succeeded", "halted", "cancelled"]},
        "current_wave": {"type": "integer", "description": "0-based index of the wave running (or that ended it)"},
        "waves": {"type": "integer"}, "deadline_s": {"type": "integer"}, "error": _NULLSTR,
        "actor": {"type": "string"}, "created_at": _TIME, "finished_at": _TIME,
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "agents": {"type": "array", "items": {"type": "object", "properties": {
            "url": {"type": "string"}, "tenants": _STRS, "wave": {"type": "integer"},
            "status": {"enum": ["waiting", "running", "succeeded", "failed", "not_started"]},
            "from_version": _NULLSTR, "to_version": _NULLSTR, "reason": _NULLSTR,
            "started_at": _TIME, "finished_at": _TIME}}}}},
    "AgentUpdateList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/AgentUpdate"}}}},
}

PATHS = {
    "/api/agents": {
        "get": _op("The fleet's agents with what the latest agent scan found", "read", {**_ok("AgentList")}),
    },
    "/api/agent-updates/preview": {
        "post": _op("Preview updating the agents to CCP's agent version (read-only)", "admin",
                    {**_ok("AgentUpdatePlan"), **_E}, body="AgentUpdatePreviewRequest"),
    },
    "/api/agent-updates": {
        "get": _op("The latest agent updates, newest first", "read", {**_ok("AgentUpdateList")}),
        "post": _op("Update the agents to CCP's agent version in waves", "admin",
                    {**_ok("AgentUpdate", "202", "Started"), **_E}, body="AgentUpdateRequest"),
    },
    "/api/agent-updates/{rollout_id}": {
        "get": _op("An agent update with each agent's progress", "read",
                   {**_ok("AgentUpdate"), "400": _ERR, "404": _ERR}, params=[_RID]),
    },
    "/api/agent-updates/{rollout_id}/cancel": {
        "post": _op("Cancel an agent update (waves not started never start)", "admin",
                    {**_ok("AgentUpdate"), "400": _ERR, "404": _ERR, "409": _ERR}, params=[_RID]),
    },
}
