"""Upgrade routes: preview / start a release upgrade, quick upgrade, upgrade now, status, cancel, history.

Paths and the `imageTag` / `plan` field names are the earlier system's, so existing scripts keep working. A bad tag
is refused here, before the service is called, so nothing is ever enqueued for it.
"""

from __future__ import annotations


from flask import g, url_for
from sqlalchemy import select

from ccp.api.auth import require
from ccp.api.base import bp, json_body, page_args, page_of, reject_unknown
from ccp.api.errors import ApiError
from ccp.api.instances import find_instance
from ccp.drivers import FileDiff
from ccp.extensions import db
from ccp.models import Upgrade, iso_utc
from ccp.services import upgrades as svc
from ccp.services.backups import BackupInfo, backup_of
from ccp.services.plan import Preview
from ccp.services.upgrades import UpgradeStatus



@bp.post("/instances/<ref:ref>/upgrade-release/preview")
@require("operate")
def preview_release(ref: str):
    """Read-only: what upgrading to `imageTag` would change (files, diffs with .env values masked, coverage)."""
    inst = find_instance(ref)
    tag, _ = _release_body(json_body(allow_empty=True), plan_allowed=False)
    return preview_json(svc.preview_release(inst, tag))


@bp.post("/instances/<ref:ref>/upgrade-release")
@require("operate")
def start_release(ref: str):
    """Enqueue an Upgrade to Release; with `plan` (a preview's plan_hash) it only applies if nothing changed since."""
    inst = find_instance(ref)
    data = json_body(allow_empty=True)
    tag, plan = _release_body({k: v for k, v in data.items() if k not in CONFIRMS}, plan_allowed=True)
    return _accepted(svc.start_release(inst, tag, plan=plan, actor=g.actor, **_confirmations(data)))


@bp.post("/instances/<ref:ref>/quick-upgrade")
@require("operate")
def quick_upgrade(ref: str):
    """Enqueue a Quick Upgrade (compose pull + up + verify with the files as they are)."""
    inst = find_instance(ref)
    data = json_body(allow_empty=True)
    reject_unknown(data, tuple(CONFIRMS))
    return _accepted(svc.start_quick(inst, actor=g.actor, **_confirmations(data)))


@bp.post("/instances/<ref:ref>/upgrade-now")
@require("operate")
def upgrade_now(ref: str):
    """Enqueue Upgrade Now (the tenant's own scripts/upgrade.sh + verify)."""
    inst = find_instance(ref)
    data = json_body(allow_empty=True)
    reject_unknown(data, tuple(CONFIRMS))
    return _accepted(svc.start_full(inst, actor=g.actor, **_confirmations(data)))


@bp.get("/instances/<ref:ref>/upgrades")
@require("read")
def instance_upgrades(ref: str):
    """An instance's upgrades, newest first, paginated."""
    inst = find_instance(ref)
    page, per_page = page_args()
    stmt = select(Upgrade).filter_by(instance_id=inst.id).order_by(Upgrade.id.desc())
    return page_of(stmt, page, per_page, lambda upgrade: upgrade_json(svc.upgrade_status(upgrade)))


@bp.get("/upgrades/<id:upgrade_id>")
@require("read")
def get_upgrade(upgrade_id: int):
    """One upgrade with its steps and timings."""
    return upgrade_json(svc.upgrade_status(_find_upgrade(upgrade_id)))


@bp.post("/upgrades/<id:upgrade_id>/cancel")
@require("operate")
def cancel(upgrade_id: int):
    """Cancel a queued upgrade, or ask a running one to stop at its next safe point; 409 when already finished."""
    upgrade = _find_upgrade(upgrade_id)
    reject_unknown(json_body(allow_empty=True), ())
    upgrade = svc.cancel_upgrade(upgrade, actor=g.actor)
    return upgrade_json(svc.upgrade_status(upgrade))


@bp.post("/upgrades/<id:upgrade_id>/restore")
@require("operate")
def restore(upgrade_id: int):
    """Put back the data backup this upgrade took (the template set's restore hook, then up and verify): 202 with
    the new "restore" upgrade. It overwrites the tenant's current data, so the body must say `{"confirm": true}`
    (422 `confirmation_required` otherwise, nothing queued); 409 `no_backup` for an upgrade that took none."""
    upgrade = _find_upgrade(upgrade_id)
    data = json_body(allow_empty=True)
    reject_unknown(data, ("confirm",))
    if "confirm" in data and not isinstance(data["confirm"], bool):
        raise ApiError(422, "validation_failed", "invalid field(s): confirm", {"confirm": "must be true or false"})
    return _accepted(svc.start_restore(upgrade.instance, upgrade, actor=g.actor, confirm=data.get("confirm") is True))


def upgrade_json(upgrade: UpgradeStatus) -> dict:
    """An upgrade with its steps as JSON (timestamps ISO 8601 with their UTC offset)."""
    return {
        "id": upgrade.id, "instance": upgrade.instance_slug, "instance_id": upgrade.instance_id,
        "kind": upgrade.kind, "status": upgrade.status, "from_tag": upgrade.from_tag, "to_tag": upgrade.to_tag,
        "image_digest": upgrade.image_digest, "rollback_of": upgrade.rollback_of,
        "backup_id": upgrade.backup_id, "backup": _backup_json(backup_of(upgrade)),
        "plan_hash": upgrade.plan_hash, "actor": upgrade.actor, "error": upgrade.error,
        "cancel_requested": upgrade.cancel_requested,
        "created_at": iso_utc(upgrade.created_at), "started_at": iso_utc(upgrade.started_at),
        "finished_at": iso_utc(upgrade.finished_at), "duration_s": upgrade.duration_s,
        "steps": [{"name": s.name, "status": s.status, "started_at": iso_utc(s.started_at),
                   "finished_at": iso_utc(s.finished_at), "duration_s": s.duration_s, "output_tail": s.output_tail}
                  for s in upgrade.steps],
    }


def _backup_json(backup: BackupInfo | None) -> dict | None:
    if backup is None:
        return None
    return {"id": backup.id, "size_bytes": backup.size_bytes, "duration_s": backup.duration_s}


def preview_json(preview: Preview) -> dict:
    """A release preview as JSON: files by path, each with its diff (.env values masked by the host), and the .env
    per key (`env`: values of secret keys withheld; null from an agent too old to tell)."""
    return {
        "instance": preview.instance, "tag": preview.tag, "from_tag": preview.from_tag,
        "registered": preview.registered, "set": {"name": preview.set_name, "version": preview.set_version},
        "plan_hash": preview.plan_hash, "summary": preview.summary, "files": [_file_json(f) for f in preview.files],
        "coverage": preview.coverage, "env_patch": preview.env_patch,
        "env": None if preview.env_changes is None else [c.as_dict() for c in preview.env_changes],
        "env_other_keys": list(preview.env_other_keys), "secrets_changed": list(preview.secrets_changed),
    }


def _file_json(diff: FileDiff) -> dict:
    return {"path": diff.path, "status": diff.status, "old_sha256": diff.old_sha256, "new_sha256": diff.new_sha256,
            "added": diff.added, "removed": diff.removed, "diff": diff.diff, "truncated": diff.truncated}


def _release_body(data: dict, *, plan_allowed: bool) -> tuple[str | None, str | None]:
    reject_unknown(data, ("imageTag", "plan") if plan_allowed else ("imageTag",))
    tag, plan = data.get("imageTag"), data.get("plan")  # their rules are checked once, by the upgrades service
    errors = {}
    if tag is not None and not isinstance(tag, str):
        errors["imageTag"] = "must be a string"
    if plan is not None and not isinstance(plan, str):
        errors["plan"] = "must be a preview's plan_hash (64 lowercase hex characters)"
    if errors:
        raise ApiError(422, "validation_failed", "invalid field(s): " + ", ".join(sorted(errors)), errors)
    return tag, plan


# Body fields that confirm a start the service would refuse otherwise (409 outside_window / held).
CONFIRMS = {"outsideWindowOk": "outside_window_ok", "heldOk": "held_ok"}


def _confirmations(data: dict) -> dict:
    """The start's confirmations from the body (true or false; absent: false); 422 for any other value."""
    bad = {name: "must be true or false" for name in CONFIRMS if not isinstance(data.get(name, False), bool)}
    if bad:
        raise ApiError(422, "validation_failed", "invalid field(s): " + ", ".join(sorted(bad)), bad)
    return {arg: data.get(name, False) for name, arg in CONFIRMS.items()}


def _accepted(upgrade: Upgrade):
    location = url_for("api.get_upgrade", upgrade_id=upgrade.id)
    return upgrade_json(svc.upgrade_status(upgrade)), 202, {"Location": location}


def _find_upgrade(upgrade_id: int) -> Upgrade:
    upgrade = db.session.get(Upgrade, upgrade_id)
    if upgrade is None:
        raise ApiError(404, "not_found", f"no upgrade {upgrade_id}")
    return upgrade
