"""The values a template set is rendered with, built from an instance (duck-typed) and its secrets.

Templates see four names:

- ``tenant``: slug, name, domain, is_registered, compose_project, health_urls;
- ``image_tag``: the proposed tag, else the instance's tag, else the configured default;
- ``vars``: the set's ``[defaults]`` overlaid with the instance's non-secret vars (all strings);
- ``secrets``: the set's secret values, only for CCP-provisioned tenants (empty for registered ones);
- ``template_set``: name and version.

Every value is checked here, so a bad instance fails with a ValueError before any template runs. Error messages name
keys, never values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from ccp.rendering.sets import TemplateSet, load_template_set

TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control chars (tab allowed) break .env and configs


def validate_tag(tag: object) -> str:
    """Return ``tag`` when it is a valid docker image tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``).

    Raises ValueError otherwise (the message quotes the tag: tags are not secret).
    """
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise ValueError(f"invalid image tag {tag!r}: use letters, digits, '_', '.', '-' (max 128, no leading '.-')")
    return tag


def _text(key: str, value: object, kind: str) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{kind} {key!r} must be a string, number or boolean")  # noqa: TRY004 - callers map ValueError to 400
    if _FORBIDDEN_CHARS.search(value):
        raise ValueError(f"{kind} {key!r} contains a newline or control character")
    return value


def _checked_mapping(values: Mapping | None, kind: str) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{kind}s must be a mapping of names to values")  # noqa: TRY004
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or not _VAR_NAME.fullmatch(key):
            raise ValueError(f"invalid {kind} name {key!r}")
        out[key] = _text(key, value, kind)
    return out


def _tenant(instance) -> dict:
    slug = getattr(instance, "slug", None)
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise ValueError(f"invalid tenant slug {slug!r} (lower-case letters, digits and '-')")
    domain = getattr(instance, "domain", None)
    if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
        raise ValueError(f"tenant {slug}: invalid domain {domain!r}")
    project = getattr(instance, "compose_project", None) or slug
    if not _PROJECT.fullmatch(project):
        raise ValueError(f"tenant {slug}: invalid compose project name {project!r}")
    health_urls = list(getattr(instance, "health_urls", None) or [])
    if not all(isinstance(url, str) and not _FORBIDDEN_CHARS.search(url) for url in health_urls):
        raise ValueError(f"tenant {slug}: health_urls must be a list of strings")
    return {
        "slug": slug,
        "name": _text("name", getattr(instance, "name", None) or slug, "tenant field"),
        "domain": domain,
        "is_registered": bool(getattr(instance, "is_registered", False)),
        "compose_project": project,
        "health_urls": health_urls,
    }


def choose_tag(instance, tag: str | None = None, default_tag: str = "latest") -> str:
    """Return the tag to render: ``tag``, else ``instance.image_tag``, else ``default_tag`` — validated.

    Raises ValueError when the chosen tag is not a valid docker tag.
    """
    return validate_tag(tag or getattr(instance, "image_tag", None) or default_tag)


def build_context(
    instance,
    tag: str | None = None,
    *,
    secrets: Mapping | None = None,
    default_tag: str = "latest",
    template_set: TemplateSet | None = None,
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
        "vars": MappingProxyType(dict(sorted(merged.items()))),
        "secrets": MappingProxyType(held),
        "template_set": {"name": tset.name, "version": tset.version},
    }


def managed_env_values(
    instance, tag: str | None = None, *, default_tag: str = "latest", template_set: TemplateSet | None = None
) -> dict[str, str]:
    """Return the .env values CCP patches on a registered tenant: IMAGE_TAG plus the set's other managed keys.

    Values come from the chosen tag and the merged vars. Raises ValueError when a managed key has no value.
    """
    context = build_context(instance, tag, default_tag=default_tag, template_set=template_set)
    tset = template_set or load_template_set(getattr(instance, "template_set", None) or "default")
    values = {"IMAGE_TAG": context["image_tag"]}
    for key in sorted(tset.managed_env_keys - {"IMAGE_TAG"}):
        if key not in context["vars"]:
            raise ValueError(f"managed env key {key} has no value in the instance vars or set defaults")
        values[key] = context["vars"][key]
    return values
