"""Fleet awareness routes: the fleet with what scans found (read), scans (start: operate; show: read), schedules
and notification channels (admin). A channel's URL goes in and never comes out: answers carry `url_hint` only."""

from __future__ import annotations

from flask import g, request, url_for

from ccp.api.auth import require
from ccp.api.base import QUERY_PARAMS, bp, json_body, reject_unknown
from ccp.api.errors import ApiError
from ccp.extensions import db
from ccp.models import NotificationChannel, ScanRun, iso_utc
from ccp.services import notify, schedules
from ccp.services.fleet import FLEET_FILTERS, FleetRow, fleet_rows, fleet_view
from ccp.services.scan_runs import start_scan

QUERY_PARAMS.update({"api.fleet": {"q", "filter"}})
CHANNEL_FIELDS = ("name", "url", "events", "enabled", "unreachableAfterS")
# JSON types of the fields these routes take; null is not "left out" (leave the field out for that).
TYPES = {"name": (str,), "url": (str,), "events": (list,), "enabled": (bool,), "unreachableAfterS": (int,),
         "kinds": (list,), "cron": (str,)}


def _typed(data: dict) -> dict:
    """422 naming every field whose JSON type is wrong (a boolean is not an integer here)."""
    names = {str: "a string", list: "an array", bool: "true or false", int: "an integer"}
    bad = {k: f"must be {names[TYPES[k][0]]}"
           for k, v in data.items() if k in TYPES and (not isinstance(v, TYPES[k])
                                                        or (TYPES[k] == (int,) and isinstance(v, bool)))}
    if bad:
        raise ApiError(422, "validation_failed", "wrong type: " + ", ".join(sorted(bad)), bad)
    return data


@bp.get("/fleet")
@require("read")
def fleet():
    """Every instance (matching `q`) with what the latest scans found and why it is flagged, the count per filter,
    and only those under `filter` (behind, drifted, unreachable, agent_old, attention, held) when given."""
    flag = request.args.get("filter")
    if flag is not None and flag not in dict(FLEET_FILTERS):  # (an empty one too: leave it out for all)
        raise ApiError(400, "invalid_parameter", f"filter must be one of {', '.join(dict(FLEET_FILTERS))}",
                       {"filter": "unknown filter"})
    view = fleet_view(fleet_rows(request.args.get("q", "")), flag or "")
    return {"items": [_row_json(r) for r in view.rows], "counts": view.counts, "total": view.total,
            "filter": view.flag or None}


def _row_json(row: FleetRow) -> dict:
    return {"slug": row.slug, "name": row.name, "imageTag": row.image_tag, "agentVersion": row.agent_version,
            "syncState": row.sync_state, "driftedFiles": list(row.drifted_files), "scannedAt": iso_utc(row.scanned_at),
            "flags": sorted(row.flags), "reasons": [{"flag": f, "why": why} for f, why in row.reasons]}


@bp.post("/scans")
@require("operate")
def start_scan_route():
    """Start a scan of every instance: `kinds` among drift, updates, agents (default all); one job per instance."""
    data = json_body(allow_empty=True)
    reject_unknown(data, ("kinds",))
    _typed(data)
    run = start_scan(data["kinds"] if "kinds" in data else ("agents", "drift", "updates"), source="api",
                     actor=g.actor)
    return scan_json(run), 202, {"Location": url_for("api.get_scan", run_id=run.id)}


@bp.get("/scans/<id:run_id>")
@require("read")
def get_scan(run_id: int):
    """One scan run: its kinds, progress and (once finished) its summary."""
    run = db.session.get(ScanRun, run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no scan #{run_id}")
    return scan_json(run)


def scan_json(run: ScanRun) -> dict:
    """A scan run as the API shows it."""
    return {"id": run.id, "kinds": run.kinds, "source": run.source, "actor": run.actor, "total": run.total,
            "done": run.done, "createdAt": iso_utc(run.created_at), "finishedAt": iso_utc(run.finished_at),
            "summary": run.summary or None}


@bp.get("/schedules")
@require("admin")
def list_schedules():
    """Every scan schedule with its last and next run."""
    return {"items": [{"kind": s.kind, "cron": s.cron, "enabled": s.enabled, "lastRunAt": iso_utc(s.last_run_at),
                       "nextRunAt": iso_utc(s.next_run_at), "lastRunId": s.last_run_id}
                      for s in schedules.list_schedules()]}


@bp.patch("/schedules/<kind>")
@require("admin")
def update_schedule(kind: str):
    """Change a schedule's `cron` (five fields, UTC) and/or `enabled`; 422 on a bad value (nothing changes)."""
    data = json_body()
    reject_unknown(data, ("cron", "enabled"))
    _typed(data)
    schedules.update_schedule(kind, cron=data.get("cron"), enabled=data.get("enabled"), actor=g.actor)
    return next(s for s in list_schedules()["items"] if s["kind"] == kind)


@bp.get("/channels")
@require("admin")
def list_channels():
    """Notification channels (URL hints only)."""
    return {"items": [channel_json(c) for c in notify.list_channels()]}


@bp.post("/channels")
@require("admin")
def create_channel():
    """Add a channel: `name`, `url` (an Apprise URL, stored encrypted), `events`, `unreachableAfterS` (201)."""
    data = _typed(json_body())
    reject_unknown(data, CHANNEL_FIELDS)
    channel = notify.create_channel(data.get("name"), data.get("url"), data.get("events"),
                                    unreachable_after_s=data.get("unreachableAfterS"), actor=g.actor)
    if data.get("enabled") is False:
        channel = notify.update_channel(channel.id, enabled=False, actor=g.actor)
    return channel_json(channel), 201


@bp.route("/channels/<id:channel_id>", methods=["PATCH", "DELETE"])
@require("admin")
def channel(channel_id: int):
    """PATCH: change what is given (a URL left out stays as stored). DELETE: remove the channel (204).

    (One rule for both methods: with two, an id the converter refuses would answer 405 instead of 404.)"""
    if request.method == "DELETE":
        notify.delete_channel(channel_id, actor=g.actor)
        return "", 204
    data = _typed(json_body())
    reject_unknown(data, CHANNEL_FIELDS)
    fields = {("unreachable_after_s" if k == "unreachableAfterS" else k): v for k, v in data.items()}
    return channel_json(notify.update_channel(channel_id, actor=g.actor, **fields))


@bp.post("/channels/<id:channel_id>/test")
@require("admin")
def test_channel(channel_id: int):
    """Queue a test message to the channel (202); the job's outcome shows in the channel's lastSentAt/lastError."""
    reject_unknown(json_body(allow_empty=True), ())
    return {"job": notify.send_test(channel_id, actor=g.actor)}, 202


def channel_json(channel: NotificationChannel) -> dict:
    """A channel as the API shows it: never its URL, only Apprise's privacy form of it."""
    return {"id": channel.id, "name": channel.name, "urlHint": channel.url_hint, "events": channel.events,
            "enabled": channel.enabled, "unreachableAfterS": channel.unreachable_after_s,
            "lastSentAt": iso_utc(channel.last_sent_at), "lastError": channel.last_error}
