"""Rollout routes (preview, start, list, show, cancel); the CI webhook that also starts rollouts is ccp.api.webhooks."""

from __future__ import annotations

from flask import g, url_for
from sqlalchemy import select

from ccp.api.auth import require
from ccp.api.base import bp, json_body, page_args, page_of, reject_unknown
from ccp.api.errors import ApiError
from ccp.extensions import db
from ccp.models import Rollout, iso_utc
from ccp.services import rollouts as svc
from ccp.services.rollout_preview import RolloutPreview, preview_rollout
from ccp.services.rollout_progress import rollout_waves

FIELDS = ("tag", "instances", "canary", "waveSize")


@bp.post("/rollouts")
@require("operate")
def start_rollout():
    """Start rolling `tag` out in waves (a canary wave, then waves of `waveSize`); 409 while another runs."""
    rollout = _start(json_body(), actor=g.actor, source="api")
    return _accepted(rollout)


@bp.post("/rollouts/preview")
@require("operate")
def preview_rollout_route():
    """What starting this rollout would do (same body as a start): per tenant from -> to, files and secrets that
    would change, missing env, or why it cannot be previewed (agent unreachable, too old); the waves. Reads only."""
    return preview_json(preview_rollout(**_rollout_args(json_body())))


@bp.get("/rollouts")
@require("read")
def list_rollouts():
    """Rollouts, newest first, paginated."""
    page, per_page = page_args()
    return page_of(select(Rollout).order_by(Rollout.id.desc()), page, per_page, rollout_json)


@bp.get("/rollouts/<id:rollout_id>")
@require("read")
def get_rollout(rollout_id: int):
    """One rollout: its waves, each tenant's upgrade and status, and why it halted."""
    return rollout_json(_find(rollout_id))


@bp.post("/rollouts/<id:rollout_id>/cancel")
@require("operate")
def cancel_rollout(rollout_id: int):
    """Start no further wave (upgrades already started finish); 409 when the rollout has ended."""
    rollout = _find(rollout_id)
    reject_unknown(json_body(allow_empty=True), ())
    svc.cancel_rollout(rollout, actor=g.actor)
    return rollout_json(rollout)


def rollout_json(rollout: Rollout) -> dict:
    """A rollout as JSON: its waves with each tenant's upgrade id and status (a deleted tenant is "#<id> (deleted)")."""
    waves = [{"number": wave.number, "status": wave.status, "started_at": wave.started_at,
              "finished_at": wave.finished_at,
              "tenants": [{"instance": t.label, "upgrade_id": t.upgrade_id, "status": t.status, "error": t.error,
                           "from_tag": t.from_tag, "to_tag": t.to_tag, "started_at": iso_utc(t.started_at),
                           "finished_at": iso_utc(t.finished_at), "duration_s": t.duration_s,
                           "waits_until": iso_utc(t.waits_until)}
                          for t in wave.tenants]}
             for wave in rollout_waves(rollout)]
    return {"id": rollout.id, "tag": rollout.tag, "image_digest": rollout.image_digest, "status": rollout.status,
            "source": rollout.source, "kind": rollout.kind, "rollback_of": rollout.rollback_of,
            "actor": rollout.actor, "error": rollout.error, "cancel_requested": rollout.cancel_requested,
            "created_at": iso_utc(rollout.created_at), "finished_at": iso_utc(rollout.finished_at),
            "skipped": list(svc.skipped_of(rollout)[0]),
            "held": [{"instance": slug, "reason": why} for slug, why in svc.skipped_of(rollout)[1]], "waves": waves}


def preview_json(preview: RolloutPreview) -> dict:
    """A rollout preview as JSON (secret names only, never values)."""
    return {"tag": preview.tag, "canary": preview.canary, "waveSize": preview.wave_size,
            "tenants": len(preview.tenants), "blocked": len(preview.blocked), "halts_at_wave": preview.halts_at,
            "skipped": list(preview.skipped), "elapsed_s": preview.elapsed_s, "digest": preview.digest,
            "held": [{"instance": slug, "reason": why} for slug, why in preview.held],
            "waves": [{"number": wave.number, "canary": wave.canary, "tenants": [
                {"instance": t.slug, "from_tag": t.from_tag, "to_tag": t.to_tag, "state": t.state,
                 "problem": t.problem, "files": {"modified": t.modified, "created": t.created},
                 "secrets_changed": list(t.secrets_changed), "missing_env": list(t.missing_env),
                 "blocked": t.blocked, "plan_hash": t.plan_hash, "window": t.window_note, "busy": t.busy}
                for t in wave.tenants]}
                      for wave in preview.waves]}


def _rollout_args(data: dict) -> dict:
    """The service's arguments from a start or preview body (unknown fields and `instances: null` refused)."""
    reject_unknown(data, FIELDS)
    if "instances" in data and data["instances"] is None:  # only a missing field means "every instance"
        raise svc.RolloutInvalid("instances must be a non-empty list of slugs; leave it out for every instance",
                                 {"instances": "null is not a list: leave the field out for every instance"})
    return {"tag": data.get("tag"), "instances": data.get("instances"), "canary": data.get("canary", 1),
            "wave_size": data.get("waveSize", 5)}


def _start(data: dict, *, actor: str, source: str) -> Rollout:
    """A start may carry `expect`, a preview's `digest`: the start is then refused (409 preview_stale, nothing
    recorded) when the tenants or waves differ from what that preview showed."""
    expect = data.get("expect")
    if "expect" in data and not (isinstance(expect, str) and len(expect) == 64
                                 and all(c in "0123456789abcdef" for c in expect)):
        raise svc.RolloutInvalid("expect must be a preview's digest (64 lowercase hex digits)",
                                 {"expect": "a preview's digest"})
    args = _rollout_args({k: v for k, v in data.items() if k != "expect"})
    return svc.start_rollout(**args, actor=actor, source=source, expect=expect)


def _accepted(rollout: Rollout):
    return rollout_json(rollout), 202, {"Location": url_for("api.get_rollout", rollout_id=rollout.id)}


def _find(rollout_id: int) -> Rollout:
    rollout = db.session.get(Rollout, rollout_id)
    if rollout is None:
        raise ApiError(404, "not_found", f"no rollout {rollout_id}")
    return rollout
