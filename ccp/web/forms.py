"""Turning the instance form into the dict the instances service validates, and an instance back into form values.

Validation itself lives in ccp.services.instances (InstanceError.errors maps field -> message); this module only
parses text fields (one health URL per line, KEY=value lines for vars). The agent key is write-only: it is never put
back into a form, and an empty key field on edit keeps the stored key.
"""

from __future__ import annotations

from wtforms import IntegerField

from ccp import rules
from ccp.models import Instance

TEXT_FIELDS = ("name", "domain", "driver", "agent_url", "agent_key_id", "install_dir", "compose_project",
               "image_tag", "template_set")


def instance_data_from_form(form, *, creating: bool) -> tuple[dict, dict[str, str]]:
    """Return (data for the service, parse errors by field). Parse errors are reported like service errors."""
    data: dict = {name: (form.get(name) or "").strip() for name in TEXT_FIELDS}
    errors: dict[str, str] = {}
    if creating:
        data["slug"] = (form.get("slug") or "").strip()
        if not data["compose_project"]:
            data["compose_project"] = data["slug"]
    if not data["template_set"]:
        data["template_set"] = "default"
    data["is_registered"] = form.get("is_registered") == "on"
    data["health_urls"] = [line.strip() for line in (form.get("health_urls") or "").splitlines() if line.strip()]
    data["vars"] = {}
    for number, line in enumerate((form.get("vars") or "").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            errors["vars"] = f"line {number}: write NAME=value"
            break
        data["vars"][key.strip()] = value
    window = (form.get("monitor_window_s") or "").strip()
    if not window:
        data["monitor_window_s"] = None
    elif window.isascii() and window.isdigit() and len(window) <= 6:
        data["monitor_window_s"] = int(window)
    else:
        errors["monitor_window_s"] = "a whole number of seconds, or empty for the default"
    key = form.get("agent_key") or ""
    if key:
        data["agent_key"] = key
    return data, errors


def form_values(instance: Instance | None, form=None) -> dict:
    """Values to show in the form: what was submitted (after an error), else the instance's, else defaults."""
    if form is not None:
        shown = (*TEXT_FIELDS, "slug", "health_urls", "vars", "monitor_window_s")
        values = {name: form.get(name, "") for name in shown}
        values["is_registered"] = form.get("is_registered") == "on"
        values["agent_url"] = _without_password(values["agent_url"])  # refused anyway; never shown back
        return values
    if instance is None:
        return {"driver": "remote", "template_set": "default", "is_registered": False}
    values = {name: getattr(instance, name) or "" for name in TEXT_FIELDS}
    values.update(
        slug=instance.slug, is_registered=instance.is_registered,
        monitor_window_s="" if instance.monitor_window_s is None else str(instance.monitor_window_s),
        health_urls="\n".join(instance.health_urls or []),
        vars="\n".join(f"{k}={v}" for k, v in sorted((instance.vars or {}).items())),
    )
    return values


def _without_password(url: str) -> str:
    """A submitted URL with any `user:password@` dropped before it is put back into the form."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if not sep or "@" not in host:
        return url
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"


class WholeNumberField(IntegerField):
    """WTForms' IntegerField reads its text with int(), which also takes '١٢', ' 1_0' and 400-digit numbers; this
    one takes 1-10 ASCII digits only (ccp.rules.ASCII_ID), so range validators see a sane number or none."""

    def process_formdata(self, valuelist):
        if valuelist and valuelist[0] != "" and not rules.ASCII_ID.fullmatch(valuelist[0]):
            self.data = None
            raise ValueError(self.gettext("Not a valid integer value."))
        super().process_formdata(valuelist)
