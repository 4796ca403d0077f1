"""The values a template set is rendered with, built from an instance (duck-typed) and its secrets.

Templates see these names:

- ``tenant``: slug, name, domain, is_registered, compose_project, health_urls;
- ``image_tag``: the proposed tag, else the instance's tag, else the configured default;
- ``image_digest``: what the tag resolved to at the registry (``sha256:...``) when the release carries one (a
  receiver resolved it, or a rollback goes back to a recorded release), else ``""``: a set that wants to pin its image
  writes ``image: app:{{ image_tag }}{% if image_digest %}@{{ image_digest }}{% endif %}``;
- ``vars``: the set's ``[defaults]`` overlaid with the instance's non-secret vars (all strings);
- ``secrets``: the set's secret values, only for CCP-provisioned tenants (empty for registered ones);
- ``template_set``: name and version.

Every value is checked here, so a bad instance fails with a ValueError before any template runs. Error messages name
keys, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ccp import rules
from ccp.rendering.sets import TemplateSet, load_template_set



def _text(key: str, value: object, kind: str) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    try:
        return rules.check_text(value)
    except rules.RuleError as exc:
        raise ValueError(f"{kind} {key!r} {exc}") from None


def _checked_mapping(values: Mapping | None, kind: str) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{kind}s must be a mapping of names to values")  # noqa: TRY004
    out = {}
    for key, value in values.items():
        try:
            rules.check_var_name(key)
        except rules.RuleError:
            raise ValueError(f"invalid {kind} name {str(key)[:40]!r}") from None
        out[key] = _text(key, value, kind)
    return out


def _tenant(instance) -> dict:
    """The tenant fields templates see, checked against the same rulebook the instances service saves with."""
    slug = getattr(instance, "slug", None)
    try:
        rules.check_slug(slug)
    except rules.RuleError as exc:
        raise ValueError(f"invalid tenant slug {str(slug)[:70]!r}: {exc}") from None
    fields = {"domain": rules.check_domain, "compose_project": rules.check_project,
              "health_urls": rules.check_health_urls, "name": rules.check_name}
    values = {"domain": getattr(instance, "domain", None),
              "compose_project": getattr(instance, "compose_project", None) or slug,
              "health_urls": list(getattr(instance, "health_urls", None) or []),
              "name": getattr(instance, "name", None) or slug}
    for field, rule in fields.items():
        try:
            rule(values[field])
        except rules.RuleError as exc:
            label = "compose project" if field == "compose_project" else field
            raise ValueError(f"tenant {slug}: invalid {label}: {exc}") from None
    return {"slug": slug, "is_registered": bool(getattr(instance, "is_registered", False)), **values}


def choose_tag(instance, tag: str | None = None, default_tag: str = "latest") -> str:
    """Return the tag to render: ``tag``, else ``instance.image_tag``, else ``default_tag`` — validated.

    Raises ValueError when the chosen tag is not a valid docker tag.
    """
    return rules.check_tag(tag or getattr(instance, "image_tag", None) or default_tag)


def build_context(
    instance,
    tag: str | None = None,
    *,
    secrets: Mapping | None = None,
    default_tag: str = "latest",
    template_set: TemplateSet | None = None,
    digest: str | None = None,
) -> dict:
    """Return the template context for ``instance`` (see module docstring).

    ``template_set`` defaults to the bundled set named by ``instance.template_set``. Secrets are used only when the
    instance is not registered, and only the keys the set declares are exposed. Raises ValueError for a bad slug,
    domain, tag, var name/value, or a secret key placed in the plain vars; TemplateSetError for an unknown set.
    """
    tset = template_set or load_template_set(getattr(instance, "template_set", None) or "default")
    tenant = _tenant(instance)
    instance_vars = _checked_mapping(getattr(instance, "vars", None), "var")
    leaked = sorted(tset.secret_keys & instance_vars.keys())
    if leaked:
        raise ValueError(f"tenant {tenant['slug']}: {', '.join(leaked)} are secrets; store them as secrets, not vars")
    merged = {**tset.defaults, **instance_vars}
    held = {}
    if not tenant["is_registered"]:
        held = {k: v for k, v in _checked_mapping(secrets, "secret").items() if k in tset.secret_keys}
    return {
        "tenant": tenant,
        "image_tag": choose_tag(instance, tag, default_tag),
        "image_digest": _digest(digest),
        "vars": MappingProxyType(dict(sorted(merged.items()))),
        "secrets": MappingProxyType(held),
        "template_set": {"name": tset.name, "version": tset.version},
    }


def _digest(value: str | None) -> str:
    if not value:
        return ""
    try:
        return rules.check_digest(value)
    except rules.RuleError as exc:
        raise ValueError(str(exc)) from None


def managed_env_values(
    instance, tag: str | None = None, *, default_tag: str = "latest", template_set: TemplateSet | None = None,
    digest: str | None = None,
) -> dict[str, str]:
    """Return the .env values CCP patches on a registered tenant: IMAGE_TAG plus the set's other managed keys.

    Values come from the chosen tag and the merged vars; a set that manages IMAGE_DIGEST gets the release's digest
    there ("" when the release carries none: the tag alone is used). Raises ValueError when a managed key has no value.
    """
    context = build_context(instance, tag, default_tag=default_tag, template_set=template_set, digest=digest)
    tset = template_set or load_template_set(getattr(instance, "template_set", None) or "default")
    values = {"IMAGE_TAG": context["image_tag"]}
    if "IMAGE_DIGEST" in tset.managed_env_keys:
        values["IMAGE_DIGEST"] = context["image_digest"]
    for key in sorted(tset.managed_env_keys - {"IMAGE_TAG", "IMAGE_DIGEST"}):
        if key not in context["vars"]:
            raise ValueError(f"managed env key {key} has no value in the instance vars or set defaults")
        values[key] = context["vars"][key]
    return values
