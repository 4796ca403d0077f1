"""Creating, validating and updating tenant instances; re-encrypting held secrets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import select

from ccp.extensions import db
from ccp.models import DRIVERS, Instance
from ccp.rendering.context import validate_tag
from ccp.vault import get_vault

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
RESERVED_SLUGS = frozenset({"new", "add", "edit", "search"})  # UI paths under /instances/
VAR_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EDITABLE = ("name", "domain", "driver", "agent_url", "agent_key_id", "install_dir", "compose_project",
            "is_registered", "image_tag", "template_set", "health_urls", "vars")


class InstanceError(ValueError):
    """Invalid instance data. `errors` maps field name -> message (shown next to form fields, or as API details)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def create_instance(data: dict, actor: str = "system") -> Instance:
    """Validate `data` and create the instance; raise InstanceError (nothing saved) on any invalid field."""
    data = dict(data)
    data.setdefault("compose_project", data.get("slug"))
    data.setdefault("name", data.get("slug"))
    errors = _validate(data, creating=True)
    if errors:
        raise InstanceError(errors)
    inst = Instance(slug=data["slug"])
    _apply(inst, data)
    db.session.add(inst)
    db.session.commit()
    _audit(actor, "instance.create", inst)
    return inst


def update_instance(inst: Instance, data: dict, actor: str = "system") -> Instance:
    """Validate a partial update and apply it; raise InstanceError (nothing changed) on any invalid field."""
    merged = {f: getattr(inst, f) for f in EDITABLE} | {"slug": inst.slug} | dict(data)
    errors = _validate(merged, creating=False, has_key=bool(inst.agent_key_enc))
    if errors:
        raise InstanceError(errors)
    _apply(inst, data)
    db.session.commit()
    changed = sorted(k for k in data if k not in ("agent_key", "secrets"))
    _audit(actor, "instance.update", inst, detail={"fields": changed})
    return inst


def delete_instance(inst: Instance, actor: str = "system") -> None:
    """Delete an instance and its upgrade history."""
    _audit(actor, "instance.delete", inst)
    db.session.delete(inst)
    db.session.commit()


def rotate_encryption() -> int:
    """Re-encrypt every held secret under the newest key; returns how many ciphertexts were rewritten."""
    vault = get_vault()
    count = 0
    for inst in db.session.execute(select(Instance)).scalars():
        if inst.agent_key_enc:
            inst.agent_key_enc = vault.rotate(inst.agent_key_enc)
            count += 1
        if inst.secrets_enc:
            inst.secrets_enc = vault.rotate(inst.secrets_enc)
            count += 1
    db.session.commit()
    return count


def _apply(inst: Instance, data: dict) -> None:
    for field in EDITABLE:
        if field in data:
            value = data[field]
            if field in ("agent_url", "agent_key_id", "install_dir", "image_tag") and value == "":
                value = None
            setattr(inst, field, value)
    if data.get("agent_key"):
        inst.set_agent_key(data["agent_key"])
    if "secrets" in data and data["secrets"] is not None:
        inst.set_secrets(data["secrets"])


def _validate(data: dict, *, creating: bool, has_key: bool = False) -> dict[str, str]:
    errors: dict[str, str] = {}
    slug = data.get("slug") or ""
    if not SLUG.match(slug):
        errors["slug"] = "use 1-63 lowercase letters, digits or '-', starting with a letter or digit"
    elif slug in RESERVED_SLUGS:
        errors["slug"] = f"{slug!r} is reserved (it names a page)"
    elif creating and db.session.execute(select(Instance.id).filter_by(slug=slug)).first():
        errors["slug"] = f"{slug!r} is taken"
    if not (data.get("name") or "").strip():
        errors["name"] = "required"
    if not PROJECT.match(data.get("compose_project") or ""):
        errors["compose_project"] = "use lowercase letters, digits, '_' or '-'"
    driver = data.get("driver") or "remote"
    if driver not in DRIVERS:
        errors["driver"] = f"must be one of {', '.join(DRIVERS)}"
    elif driver == "remote":
        if not _is_http_url(data.get("agent_url")):
            errors["agent_url"] = "required for the remote driver: an http(s):// URL"
        if not data.get("agent_key_id"):
            errors["agent_key_id"] = "required for the remote driver"
        if not (data.get("agent_key") or has_key):
            errors["agent_key"] = "required for the remote driver"
    elif driver == "local" and not (data.get("install_dir") or "").startswith("/"):
        errors["install_dir"] = "required for the local driver: an absolute path"
    if data.get("image_tag"):
        try:
            validate_tag(data["image_tag"])
        except ValueError as exc:
            errors["image_tag"] = str(exc)
    errors.update(_check_template_set(data.get("template_set") or "default"))
    urls = data.get("health_urls") or []
    if not isinstance(urls, list) or not all(_is_http_url(u) for u in urls):
        errors["health_urls"] = "each must be an http(s):// URL"
    vars_ = data.get("vars") or {}
    if not isinstance(vars_, dict) or not all(VAR_KEY.match(str(k)) and isinstance(v, str) for k, v in vars_.items()):
        errors["vars"] = "must map NAME (letters, digits, '_') to a string value"
    secrets = data.get("secrets")
    if secrets is not None:
        if data.get("is_registered"):
            errors["secrets"] = "registered tenants keep their secrets on their host; CCP holds none"
        elif not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
            errors["secrets"] = "must map NAME to a string value"
    return errors


def _check_template_set(name: str) -> dict[str, str]:
    from flask import current_app

    from ccp.rendering.sets import TemplateSetError, load_template_set

    settings = current_app.config["CCP"]
    try:
        load_template_set(name, (settings.template_sets_dir,) if settings.template_sets_dir else ())
    except TemplateSetError as exc:
        return {"template_set": str(exc)}
    return {}


def _is_http_url(value) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _audit(actor: str, action: str, inst: Instance, detail: dict | None = None) -> None:
    from ccp.services.audit import record

    record(actor, action, instance=inst, detail=detail or {})
