"""Creating, validating and updating tenant instances; re-encrypting held secrets."""

from __future__ import annotations

from sqlalchemy import select

from ccp import rules
from ccp.extensions import db
from ccp.models import ACTIVE_STATUSES, DRIVERS, Instance, Upgrade
from ccp.services.errors import ServiceError
from ccp.vault import get_vault

EDITABLE = ("name", "domain", "driver", "agent_url", "agent_key_id", "install_dir", "compose_project",
            "is_registered", "image_tag", "template_set", "health_urls", "vars", "monitor_window_s")


class InstanceError(ServiceError):
    """Invalid instance data: `details` maps field name -> message (shown next to form fields, or as API details).

    str() lists the field messages (what the CLI prints); `message` says what was refused."""

    status, code = 422, "validation_failed"

    def __init__(self, errors: dict[str, str], message: str = "the instance is not valid") -> None:
        super().__init__(message, errors)

    @property
    def errors(self) -> dict[str, str]:
        """The field messages (= details)."""
        return self.details

    def __str__(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.details.items())


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


class InstanceBusy(ServiceError):
    """An upgrade is queued or running on the instance: what it works from may not change under it."""

    status, code = 409, "upgrade_active"


# A name is only shown; every other field is something a running upgrade reads (driver, dirs, tag, vars, secrets...).
CHANGEABLE_WHILE_UPGRADING = frozenset({"name"})


def _refuse_while_upgrading(inst: Instance, what: str) -> None:
    active = db.session.execute(
        select(Upgrade.id).filter(Upgrade.instance_id == inst.id, Upgrade.status.in_(ACTIVE_STATUSES))
    ).scalar()
    if active is not None:
        raise InstanceBusy(f"upgrade {active} is active on {inst.slug}; {what} when it has ended, or cancel it",
                           {"upgrade_id": active})


def update_instance(inst: Instance, data: dict, actor: str = "system") -> Instance:
    """Validate a partial update and apply it; raise InstanceError (nothing changed) on any invalid field, and
    InstanceBusy when it changes more than the name while an upgrade is queued or running."""
    if set(data) - CHANGEABLE_WHILE_UPGRADING:
        _refuse_while_upgrading(inst, "change its settings")
    merged = {f: getattr(inst, f) for f in EDITABLE} | {"slug": inst.slug} | dict(data)
    errors = _validate(merged, creating=False, has_key=bool(inst.agent_key_enc))
    if errors:
        raise InstanceError(errors, "the change is not valid")
    _apply(inst, data)
    db.session.commit()
    changed = sorted(k for k in data if k not in ("agent_key", "secrets"))
    _audit(actor, "instance.update", inst, detail={"fields": changed})
    return inst


def delete_instance(inst: Instance, actor: str = "system") -> None:
    """Delete an instance and its upgrade history; InstanceBusy while an upgrade is queued or running on it."""
    _refuse_while_upgrading(inst, "delete it")
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
    """Every rule an instance must meet (the rulebook in ccp.rules), as field -> message; {} when valid."""
    errors: dict[str, str] = {}
    data = {**data, "health_urls": data.get("health_urls") or [], "vars": data.get("vars") or {}}

    def check(field: str, rule, *args) -> None:
        try:
            rule(data.get(field), *args)
        except rules.RuleError as exc:
            errors[field] = str(exc)

    check("slug", rules.check_slug)
    if "slug" not in errors and creating and db.session.execute(
            select(Instance.id).filter_by(slug=data["slug"])).first():
        errors["slug"] = f"{data['slug']!r} is taken"
    check("name", rules.check_name)
    check("domain", rules.check_domain)
    check("compose_project", rules.check_project)
    driver = data.get("driver") or "remote"
    if driver not in DRIVERS:
        errors["driver"] = f"must be one of {', '.join(DRIVERS)}"
    elif driver == "remote":
        if not data.get("agent_url"):
            errors["agent_url"] = "required for the remote driver: an http(s):// URL"
        else:
            check("agent_url", rules.check_http_url, "the agent URL")
        if not data.get("agent_key_id"):
            errors["agent_key_id"] = "required for the remote driver"
        else:
            check("agent_key_id", rules.check_key_id)
        if not (data.get("agent_key") or has_key):
            errors["agent_key"] = "required for the remote driver"
    elif driver == "local":
        if not data.get("install_dir"):
            errors["install_dir"] = "required for the local driver: an absolute path"
        else:
            check("install_dir", rules.check_install_dir)
    if data.get("agent_key"):
        check("agent_key", rules.check_text, 1000)
    if data.get("image_tag"):
        check("image_tag", rules.check_tag)
    check("health_urls", rules.check_health_urls)
    check("vars", rules.check_values, "vars")
    check("monitor_window_s", rules.check_monitor_window)
    if "template_set" in data and not isinstance(data["template_set"], str):
        errors["template_set"] = "must be a string"
    else:
        errors.update(_check_template_set(data.get("template_set") or "default", data.get("vars"),
                                          data.get("secrets")))
    secrets = data.get("secrets")
    if secrets is not None:
        if data.get("is_registered"):
            errors["secrets"] = "registered tenants keep their secrets on their host; CCP holds none"
        else:
            check("secrets", rules.check_values, "secrets")
    return errors


def _check_template_set(name: str, vars_, secrets) -> dict[str, str]:
    """The set must load; the plain vars must not hold one of its secret keys (the renderer refuses that), and
    held secrets must be keys the set declares (any other would be stored but never rendered)."""
    from flask import current_app

    from ccp.rendering.sets import TemplateSetError, load_template_set

    settings = current_app.config["CCP"]
    try:
        tset = load_template_set(name, (settings.template_sets_dir,) if settings.template_sets_dir else ())
    except TemplateSetError as exc:
        return {"template_set": str(exc)}
    leaked = sorted(tset.secret_keys & set(vars_ or {})) if isinstance(vars_, dict) else []
    if leaked:
        return {"vars": f"{', '.join(leaked)} are secrets of set {name}: store them as secrets, not vars"}
    unknown = sorted(set(secrets) - tset.secret_keys) if isinstance(secrets, dict) else []
    if unknown:
        return {"secrets": f"set {name} declares no secret {', '.join(str(k)[:40] for k in unknown[:5])}; "
                           f"its secrets are {', '.join(sorted(tset.secret_keys))}"}
    return {}


def _audit(actor: str, action: str, inst: Instance, detail: dict | None = None) -> None:
    from ccp.services.audit import record

    record(actor, action, instance=inst, detail=detail or {})
