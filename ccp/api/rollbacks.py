"""Release history and rollbacks: a tenant's releases, rolling it back to one of them (preview, then apply bound to
the preview's plan hash), and rolling a finished rollout's tenants back to their previous tags (preview, start)."""

from __future__ import annotations

from flask import g, url_for

from ccp.api.auth import require
from ccp.api.base import bp, json_body, reject_unknown
from ccp.api.errors import ApiError
from ccp.api.instances import find_instance
from ccp.api.rollouts import rollout_json
from ccp.api.upgrades import preview_json, upgrade_json
from ccp.extensions import db
from ccp.models import Rollout, iso_utc
from ccp.services import history, rollbacks
from ccp.services import upgrades as upgrade_svc
from ccp.services.history import Release, RollbackPreview
from ccp.services.rollbacks import RollbackPlan

# Body fields that confirm a start the service would refuse otherwise (a maintenance window, a hold).
CONFIRMS = {"outsideWindowOk": "outside_window_ok", "heldOk": "held_ok"}
SIZES = ("canary", "waveSize")


@bp.get("/instances/<ref:ref>/releases")
@require("read")
def instance_releases(ref: str):
    """The tenant's release history: its succeeded releases, newest first; the first is the current one."""
    inst = find_instance(ref)
    return {"instance": inst.slug, "items": [release_json(r) for r in history.release_history(inst)]}


@bp.get("/instances/<ref:ref>/releases/<id:upgrade_id>/rollback/preview")
@require("operate")
def preview_release_rollback(ref: str, upgrade_id: int):
    """Read-only: what rolling the tenant back to this release would change, and whether its files will be exactly
    what the release put there."""
    return rollback_preview_json(history.preview_rollback(find_instance(ref), upgrade_id))


@bp.post("/instances/<ref:ref>/releases/<id:upgrade_id>/rollback")
@require("operate")
def rollback_release(ref: str, upgrade_id: int):
    """Enqueue the Upgrade to Release that rolls the tenant back to this release, bound to a preview's `plan`."""
    inst = find_instance(ref)
    data = json_body(allow_empty=True)
    reject_unknown(data, ("plan", *CONFIRMS))
    plan = data.get("plan")
    if not isinstance(plan, str):  # absent or null too: a rollback applies a previewed plan
        raise ApiError(422, "validation_failed", "invalid field(s): plan",
                       {"plan": "must be a preview's plan_hash (64 lowercase hex characters)"})
    upgrade = history.start_rollback(inst, upgrade_id, plan=plan, actor=g.actor, **_confirmations(data))
    location = url_for("api.get_upgrade", upgrade_id=upgrade.id)
    return upgrade_json(upgrade_svc.upgrade_status(upgrade)), 202, {"Location": location}


@bp.post("/rollouts/<id:rollout_id>/rollback/preview")
@require("operate")
def preview_rollout_rollback(rollout_id: int):
    """Read-only: which tenants rolling this rollout back would take back, to which tag, in which waves; the tenants
    it skips and why; the rollout running now (a rollback waits for it)."""
    data = json_body(allow_empty=True)
    reject_unknown(data, SIZES)
    return rollback_plan_json(rollbacks.plan_rollback(_find_rollout(rollout_id), **_sizes(data)))


@bp.post("/rollouts/<id:rollout_id>/rollback")
@require("operate")
def rollback_rollout(rollout_id: int):
    """Start a rollout of kind "rollback": each tenant this rollout changed goes back to its previous tag, in waves.
    With `expect` (a preview's digest) only if the tenants and waves are still those the preview showed."""
    data = json_body(allow_empty=True)
    reject_unknown(data, (*SIZES, "expect"))
    expect = data.get("expect")
    if "expect" in data and not isinstance(expect, str):  # null too: leave the field out to start unbound
        raise ApiError(422, "validation_failed", "invalid field(s): expect", {"expect": "must be a preview's digest"})
    back = rollbacks.start_rollback(_find_rollout(rollout_id), **_sizes(data), actor=g.actor, source="api",
                                    expect=expect)
    return rollout_json(back), 202, {"Location": url_for("api.get_rollout", rollout_id=back.id)}


def release_json(release: Release) -> dict:
    """One release of the history as JSON (file hashes: relpath -> sha256; null when not recorded)."""
    return {"upgrade_id": release.upgrade_id, "tag": release.tag, "from_tag": release.from_tag,
            "image_digest": release.image_digest, "current": release.current, "recorded": release.recorded,
            "set": {"name": release.set_name, "version": release.set_version} if release.set_name else None,
            "file_hashes": release.file_hashes, "actor": release.actor, "applied_at": iso_utc(release.applied_at),
            "rollback_of": release.rollback_of, "rollout_id": release.rollout_id}


def rollback_preview_json(result: RollbackPreview) -> dict:
    """A rollback preview: the release it goes back to, how the files compare with it, and the release preview."""
    return {"rollback_of": release_json(result.target), "set_changed": result.set_changed,
            "identical": None if result.drift is None else result.identical,
            "drift": None if result.drift is None else [{"path": d.path, "change": d.change} for d in result.drift],
            "preview": preview_json(result.preview)}


def rollback_plan_json(plan: RollbackPlan) -> dict:
    """A rollout rollback's plan: waves of tenants with the tag each goes back to, the skipped ones with why."""
    return {"rollback_of": plan.rollout_id, "canary": plan.canary, "waveSize": plan.wave_size,
            "tenants": len(plan.tenants), "digest": plan.digest,
            "running_rollout_id": plan.running[0] if plan.running else None,
            "waves": [{"number": n, "canary": n == 1, "tenants": [
                {"instance": t.slug, "from_tag": t.from_tag, "to_tag": t.to_tag, "upgrade_id": t.upgrade_id,
                 "rollback_of": t.release_id, "image_digest": t.image_digest} for t in wave]}
                for n, wave in enumerate(plan.waves, 1)],
            "skipped": [{"instance": s.slug, "reason": s.reason} for s in plan.skipped]}


def _confirmations(data: dict) -> dict:
    """The confirmations the body carries (true or false; absent: false); 422 for any other value. Only those
    given are passed on."""
    bad = {name: "must be true or false" for name in CONFIRMS if not isinstance(data.get(name, False), bool)}
    if bad:
        raise ApiError(422, "validation_failed", "invalid field(s): " + ", ".join(sorted(bad)), bad)
    return {arg: True for name, arg in CONFIRMS.items() if data.get(name)}


def _sizes(data: dict) -> dict:
    return {"canary": data.get("canary", 1), "wave_size": data.get("waveSize", 5)}


def _find_rollout(rollout_id: int) -> Rollout:
    rollout = db.session.get(Rollout, rollout_id)
    if rollout is None:
        raise ApiError(404, "not_found", f"no rollout {rollout_id}")
    return rollout
