"""/api/instances: list, get, create, update, delete (by numeric id or slug). Never returns keys or secret values."""

from __future__ import annotations

import re

from flask import g, url_for
from sqlalchemy import select

from ccp.api.auth import require
from ccp.api.base import bp, json_body, page_args, page_of, reject_unknown
from ccp.api.errors import ApiError
from ccp.extensions import db
from ccp import rules
from ccp.models import Instance, iso_utc
from ccp.services import windows
from ccp.services.instances import EDITABLE, create_instance, delete_instance, update_instance

WRITABLE = (*EDITABLE, "agent_key", "secrets")
CREATABLE = ("slug", *WRITABLE)
_TYPES = {
    "slug": str, "name": str, "domain": str, "driver": str, "agent_url": (str, type(None)),
    "agent_key_id": (str, type(None)), "agent_key": (str, type(None)), "install_dir": (str, type(None)),
    "compose_project": str, "is_registered": bool, "image_tag": (str, type(None)), "template_set": str,
    "health_urls": list, "vars": dict, "secrets": (dict, type(None)), "monitor_window_s": (int, type(None)),
}


def instance_to_dict(inst: Instance) -> dict:
    """The public view of an instance: held secrets by name only, the agent key only as 'has_agent_key'."""
    return {
        "id": inst.id, "slug": inst.slug, "name": inst.name, "domain": inst.domain, "driver": inst.driver,
        "agent_url": inst.agent_url, "agent_key_id": inst.agent_key_id,
        "has_agent_key": bool(inst.agent_key_enc), "install_dir": inst.install_dir,
        "compose_project": inst.compose_project, "is_registered": inst.is_registered, "image_tag": inst.image_tag,
        "template_set": inst.template_set, "vars": dict(inst.vars or {}), "secret_names": inst.secret_names(),
        "health_urls": list(inst.health_urls or []), "monitor_window_s": inst.monitor_window_s,
        "agent_version": inst.agent_version,
        "agent_capabilities": list(inst.agent_capabilities or []), "last_seen_at": iso_utc(inst.last_seen_at),
        "attention": inst.attention, "created_at": iso_utc(inst.created_at), "updated_at": iso_utc(inst.updated_at),
        "window": window_json(inst), "hold": hold_json(inst),
    }


def window_json(inst: Instance) -> dict | None:
    """The maintenance window and whether it is open now (null: none, always open)."""
    window = windows.window_of(inst)
    if window is None:
        return None
    state = windows.window_state(inst)
    return {"cron": window.cron, "minutes": window.minutes, "timezone": window.zone_name, "label": window.label,
            "open": state.open, "endsAt": iso_utc(state.ends_at), "nextOpen": iso_utc(state.next_open)}


def hold_json(inst: Instance) -> dict | None:
    """The hold as recorded (null: none); `active` is false once its end has passed."""
    hold = windows.hold_of(inst)
    if hold is None:
        return None
    return {"reason": hold.reason, "until": iso_utc(hold.until), "by": hold.by, "active": hold.active(),
            "sentence": hold.sentence}


def find_instance(ref: str) -> Instance:
    """The instance with this numeric id or slug; ApiError(404) otherwise (also for anything that is neither, e.g. a
    query parameter with a NUL or Unicode digits: it never reaches the database). Digits are tried as an id first."""
    inst = None
    if rules.SLUG.fullmatch(ref):
        instance_id = rules.parse_id(ref)
        if instance_id is not None:
            inst = db.session.get(Instance, instance_id)
        if inst is None:
            inst = db.session.execute(select(Instance).filter_by(slug=ref)).scalar_one_or_none()
    if inst is None:
        raise ApiError(404, "not_found", f"no instance {ref[:64]!r}")
    return inst


@bp.get("/instances")
@require("read")
def list_instances():
    """Instances ordered by slug, paginated."""
    page, per_page = page_args()
    return page_of(select(Instance).order_by(Instance.slug), page, per_page, instance_to_dict)


@bp.get("/instances/<ref:ref>")
@require("read")
def get_instance(ref: str):
    """One instance."""
    return instance_to_dict(find_instance(ref))


@bp.post("/instances")
@require("admin")
def create():
    """Create an instance; 422 with per-field details when invalid (nothing saved)."""
    inst = create_instance(_checked(json_body(), CREATABLE), actor=g.actor)
    return instance_to_dict(inst), 201, {"Location": url_for("api.get_instance", ref=inst.id)}


@bp.patch("/instances/<ref:ref>")
@require("admin")
def update(ref: str):
    """Change some fields of an instance; 422 with per-field details when invalid (nothing changed)."""
    inst = find_instance(ref)
    update_instance(inst, _checked(json_body(), WRITABLE), actor=g.actor)
    return instance_to_dict(inst)


@bp.put("/instances/<ref:ref>/window")
@require("operate")
def put_window(ref: str):
    """Set the maintenance window {cron, minutes, timezone}; 422 with per-field details (nothing changed)."""
    inst = find_instance(ref)
    data = json_body()
    reject_unknown(data, ("cron", "minutes", "timezone"))
    windows.set_window(inst, data.get("cron"), data.get("minutes"), data.get("timezone"), actor=g.actor)
    return instance_to_dict(inst)


@bp.delete("/instances/<ref:ref>/window")
@require("operate")
def delete_window(ref: str):
    """Remove the maintenance window (CCP may upgrade the tenant at any time)."""
    inst = find_instance(ref)
    windows.clear_window(inst, actor=g.actor)
    return instance_to_dict(inst)


@bp.put("/instances/<ref:ref>/hold")
@require("operate")
def put_hold(ref: str):
    """Hold the tenant at its tag {reason, until?}; `until` is RFC 3339 with an offset, absent or null: until
    released. 422 with per-field details (nothing changed)."""
    inst = find_instance(ref)
    data = json_body()
    reject_unknown(data, ("reason", "until"))
    until = data.get("until")
    if until is not None and not (isinstance(until, str) and _OFFSET.search(until.strip())):
        raise ApiError(422, "validation_failed", "invalid hold: until",
                       {"until": "a date and time with its UTC offset, e.g. 2026-12-01T08:00:00+01:00, or null"})
    windows.set_hold(inst, data.get("reason"), windows.parse_until(until), actor=g.actor)
    return instance_to_dict(inst)


@bp.delete("/instances/<ref:ref>/hold")
@require("operate")
def delete_hold(ref: str):
    """Release the hold."""
    inst = find_instance(ref)
    windows.clear_hold(inst, actor=g.actor)
    return instance_to_dict(inst)


_OFFSET = re.compile(r"T.*(Z|[+-]\d\d:?\d\d)$", re.IGNORECASE)


@bp.delete("/instances/<ref:ref>")
@require("admin")
def delete(ref: str):
    """Delete an instance and its history; 409 while an upgrade is queued or running on it."""
    delete_instance(find_instance(ref), actor=g.actor)
    return "", 204


def _checked(data: dict, allowed) -> dict:
    reject_unknown(data, allowed)
    errors = {}
    for key, value in data.items():
        expected = _TYPES[key]
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            errors[key] = f"must be {_type_name(expected)}"
    if errors:
        raise ApiError(422, "validation_failed", "wrong field type(s): " + ", ".join(sorted(errors)), errors)
    return data


def _type_name(expected) -> str:
    names = {str: "a string", bool: "true or false", list: "an array", dict: "an object", type(None): "null",
             int: "a whole number"}
    if isinstance(expected, tuple):
        return " or ".join(names[t] for t in expected)
    return names[expected]
