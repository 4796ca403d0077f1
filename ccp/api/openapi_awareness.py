"""The OpenAPI description of fleet awareness: the fleet with scan findings, scans, schedules and notification
channels (merged into the document by ccp.api.openapi)."""

from __future__ import annotations

from ccp.api.openapi_parts import ERR as _ERR, ok as _ok, op as _op

from ccp.models import NOTIFY_EVENTS, SCAN_KINDS
from ccp.services.fleet import FLEET_FILTERS

_TIME = {"type": ["string", "null"], "format": "date-time"}
_E = {"400": _ERR, "404": _ERR, "413": _ERR, "415": _ERR, "422": _ERR}
_FLAGS = [key for key, _ in FLEET_FILTERS]
_ID = {"name": "channel_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_RUN = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_KIND = {"name": "kind", "in": "path", "required": True, "schema": {"enum": list(SCAN_KINDS)}}
_EVENTS = {"type": "array", "items": {"enum": list(NOTIFY_EVENTS)}, "uniqueItems": True}


SCHEMAS = {
    "FleetRow": {"type": "object", "required": ["slug", "flags", "reasons"], "properties": {
        "slug": {"type": "string"}, "name": {"type": "string"}, "imageTag": {"type": ["string", "null"]},
        "agentVersion": {"type": ["string", "null"]},
        "syncState": {"enum": ["in_sync", "drifted", "unreachable", "agent_too_old", "error", None]},
        "driftedFiles": {"type": "array", "items": {"type": "string"}}, "scannedAt": _TIME,
        "flags": {"type": "array", "items": {"enum": _FLAGS}},
        "reasons": {"type": "array", "items": {"type": "object", "properties": {
            "flag": {"enum": _FLAGS}, "why": {"type": "string"}}}}}},
    "Fleet": {"type": "object", "required": ["items", "counts", "total"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/FleetRow"}},
        "counts": {"type": "object", "properties": {k: {"type": "integer"} for k in _FLAGS}},
        "total": {"type": "integer"}, "filter": {"type": ["string", "null"]}}},
    "ScanRequest": {"type": "object", "additionalProperties": False, "properties": {
        "kinds": {"type": "array", "items": {"enum": list(SCAN_KINDS)}, "minItems": 1}}},
    "ScanRun": {"type": "object", "required": ["id", "kinds", "total", "done"], "properties": {
        "id": {"type": "integer"}, "kinds": {"type": "array", "items": {"enum": list(SCAN_KINDS)}},
        "source": {"enum": ["manual", "schedule", "api"]}, "actor": {"type": "string"},
        "total": {"type": "integer"}, "done": {"type": "integer"}, "createdAt": _TIME, "finishedAt": _TIME,
        "summary": {"type": ["object", "null"], "description": "counts (scanned, drifted, updates, unreachable) "
                                                               "and the slugs behind them"}}},
    "Schedule": {"type": "object", "required": ["kind", "cron", "enabled"], "properties": {
        "kind": {"enum": list(SCAN_KINDS)}, "cron": {"type": "string"}, "enabled": {"type": "boolean"},
        "lastRunAt": _TIME, "nextRunAt": _TIME, "lastRunId": {"type": ["integer", "null"]}}},
    "Schedules": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}},
    "ScheduleChange": {"type": "object", "additionalProperties": False, "properties": {
        "cron": {"type": "string", "maxLength": 100, "description": "five fields, UTC, at most once a minute"},
        "enabled": {"type": "boolean"}}},
    "Channel": {"type": "object", "required": ["id", "name", "urlHint", "events", "enabled"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"},
        "urlHint": {"type": "string", "description": "Apprise's privacy form of the URL (tokens masked)"},
        "events": _EVENTS, "enabled": {"type": "boolean"}, "unreachableAfterS": {"type": "integer"},
        "lastSentAt": _TIME, "lastError": {"type": ["string", "null"]}}},
    "Channels": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}}}},
    "ChannelWrite": {"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 63},
        "url": {"type": "string", "maxLength": 2000, "writeOnly": True,
                "description": "an Apprise URL; stored encrypted, never returned"},
        "events": _EVENTS, "enabled": {"type": "boolean"},
        "unreachableAfterS": {"type": "integer", "minimum": 60, "maximum": 2592000, "default": 3600}}},
    "TestQueued": {"type": "object", "required": ["job"], "properties": {"job": {"type": "string"}}},
}

PATHS = {
    "/api/fleet": {"get": _op("The fleet with what scans found, counts per filter", "read", {**_ok("Fleet"),
                              "400": _ERR}, params=[
        {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "name, slug, domain or tag"},
        {"name": "filter", "in": "query", "schema": {"enum": _FLAGS}}])},
    "/api/scans": {"post": _op("Scan every instance (one job each)", "operate",
                               {**_ok("ScanRun", "202", "Queued"), **_E, "503": _ERR}, body="ScanRequest")},
    "/api/scans/{run_id}": {"get": _op("One scan run", "read", {**_ok("ScanRun"), "404": _ERR}, params=[_RUN])},
    "/api/schedules": {"get": _op("Scan schedules", "admin", _ok("Schedules"))},
    "/api/schedules/{kind}": {"patch": _op("Change a scan schedule", "admin", {**_ok("Schedule"), **_E},
                                           params=[_KIND], body="ScheduleChange", body_required=True)},
    "/api/channels": {
        "get": _op("Notification channels", "admin", _ok("Channels")),
        "post": _op("Add a notification channel", "admin", {**_ok("Channel", "201", "Created"), **_E},
                    body="ChannelWrite", body_required=True),
    },
    "/api/channels/{channel_id}": {
        "patch": _op("Change a notification channel", "admin", {**_ok("Channel"), **_E}, params=[_ID],
                     body="ChannelWrite", body_required=True),
        "delete": _op("Remove a notification channel", "admin", {"204": {"description": "Deleted"}, "404": _ERR},
                      params=[_ID]),
    },
    "/api/channels/{channel_id}/test": {"post": _op("Queue a test message", "admin",
                                                    {**_ok("TestQueued", "202", "Queued"), **_E}, params=[_ID])},
}
