"""Describe a tenant in a TOML file so a set can be rendered without the database (`ccp render --instance-file`).

Format::

    slug = "acme"                     # required
    domain = "acme.example.org"       # required
    name = "Acme Organising"
    is_registered = false
    image_tag = "v2.10.3"
    template_set = "default"
    compose_project = "acme"
    health_urls = ["https://acme.example.org/"]
    [vars]                            # non-secret values
    SITE_TITLE = "Acme"
    [secrets]                         # only for provisioned tenants; keep such files out of version control
    POSTGRES_PASSWORD = "..."
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

_FIELDS = {"slug", "name", "domain", "is_registered", "image_tag", "template_set", "compose_project",
           "health_urls", "vars", "secrets"}


@dataclass
class FileInstance:
    """The instance attributes rendering reads (same names as ccp.models.Instance)."""

    slug: str
    domain: str
    name: str = ""
    is_registered: bool = False
    image_tag: str | None = None
    template_set: str = "default"
    compose_project: str = ""
    health_urls: list = field(default_factory=list)
    vars: dict = field(default_factory=dict)


def load_instance_file(path: str | Path) -> tuple[FileInstance, dict]:
    """Read an instance TOML file; returns (instance, secrets).

    Raises ValueError naming the file for unreadable TOML, unknown keys, missing slug/domain or wrong types.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read instance file: {exc}") from None
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}")
    for key in ("slug", "domain"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{path}: {key} is required and must be a string")  # noqa: TRY004
    for key, kind in (("vars", dict), ("secrets", dict), ("health_urls", list), ("is_registered", bool)):
        if key in data and not isinstance(data[key], kind):
            raise ValueError(f"{path}: {key} must be a {kind.__name__}")
    secrets = data.pop("secrets", {})
    return FileInstance(**data), secrets
