"""Template sets: a named folder of files plus a small ``set.toml``.

Layout of a set folder::

    <name>/set.toml          version = "1.2.0" (required), description, secret_keys, managed_env_keys, [defaults]
    <name>/**/*.j2           rendered with Jinja2; output path drops ".j2"
    <name>/**/<other>        copied byte-for-byte

Bundled sets live next to this module in ``sets/``; operators add sets in their own directories (the configured
CCP_TEMPLATE_SETS_DIR, passed in as ``extra_dirs``). A set in an operator directory overrides a bundled set of the
same name, so operators can customise ``default`` without forking CCP.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_DIR = Path(__file__).parent / "sets"
MANIFEST = "set.toml"
_SET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ENV_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")
_SKIP_DIRS = {"__pycache__", ".git"}


class TemplateSetError(ValueError):
    """A template set is missing, misnamed or malformed."""


@dataclass(frozen=True)
class TemplateSet:
    """A loaded template set.

    ``files`` are source paths relative to ``root`` (sorted, POSIX separators, manifest excluded).
    ``secret_keys`` are values CCP holds encrypted for provisioned tenants (never in ``defaults``);
    ``optional_secret_keys`` (a subset) may be left empty, the rest must be provided to render ``.env``;
    ``managed_env_keys`` are .env keys CCP patches in place on registered tenants (always includes IMAGE_TAG);
    ``defaults`` are template values used when an instance's vars do not set them.
    """

    name: str
    version: str
    root: Path
    files: tuple[str, ...]
    description: str = ""
    secret_keys: frozenset[str] = frozenset()
    optional_secret_keys: frozenset[str] = frozenset()
    managed_env_keys: frozenset[str] = frozenset({"IMAGE_TAG"})
    defaults: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def output_path(source: str) -> str:
        """Return the rendered path of a source file (``.j2`` suffix removed)."""
        return source.removesuffix(".j2")


def _search_dirs(extra_dirs: Iterable[str | os.PathLike]) -> list[Path]:
    return [Path(d) for d in extra_dirs if d] + [BUNDLED_DIR]


def _list_files(root: Path) -> tuple[str, ...]:
    """Every file under root except the manifest; refuses symlinks that leave the set and clashing outputs.

    Uses scandir and resolves only symlinks: this runs on every render, so it must stay cheap.
    """
    files: list[str] = []
    outputs: dict[str, str] = {}
    resolved_root = root.resolve()
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(resolved_root):
                    raise TemplateSetError(f"template set {root.name}: {rel} points outside the set")
                if entry.is_dir():
                    if entry.name not in _SKIP_DIRS:
                        pending.append((Path(entry.path), rel + "/"))
                    continue
                if rel == MANIFEST or not entry.is_file():
                    continue
                output = TemplateSet.output_path(rel)
                if output in outputs:
                    first, second = sorted((outputs[output], rel))
                    raise TemplateSetError(f"template set {root.name}: {first} and {second} both render {output}")
                outputs[output] = rel
                files.append(rel)
    return tuple(sorted(files))


def _string_list(manifest: dict, key: str, where: str) -> frozenset[str]:
    value = manifest.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and _ENV_KEY.fullmatch(v) for v in value):
        raise TemplateSetError(f"{where}: {key} must be a list of UPPER_CASE names")
    return frozenset(value)


_manifest_cache: dict[str, tuple[tuple[int, int], dict]] = {}


def _parse_manifest(path: Path) -> dict:
    """Parse set.toml, cached by (mtime, size): parsing it on every render would cost more than rendering."""
    try:
        stat = path.stat()
        cached = _manifest_cache.get(str(path))
        if cached and cached[0] == (stat.st_mtime_ns, stat.st_size):
            return cached[1]
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateSetError(f"template set {path.parent.name!r} has no {MANIFEST}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateSetError(f"{path}: {exc}") from None
    _manifest_cache[str(path)] = ((stat.st_mtime_ns, stat.st_size), manifest)
    return manifest


def _read_manifest(root: Path, name: str) -> TemplateSet:
    where = f"{root / MANIFEST}"
    manifest = _parse_manifest(root / MANIFEST)
    version = manifest.get("version")
    if not isinstance(version, str) or not version.strip():
        raise TemplateSetError(f"{where}: version must be a non-empty string")
    defaults = manifest.get("defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        raise TemplateSetError(f"{where}: [defaults] must map names to strings")
    secret_keys = _string_list(manifest, "secret_keys", where)
    if secret_keys & defaults.keys():
        raise TemplateSetError(f"{where}: secrets must not have defaults: {sorted(secret_keys & defaults.keys())}")
    optional = _string_list(manifest, "optional_secret_keys", where)
    if not optional <= secret_keys:
        raise TemplateSetError(f"{where}: optional_secret_keys not in secret_keys: {sorted(optional - secret_keys)}")
    managed = _string_list(manifest, "managed_env_keys", where) | {"IMAGE_TAG"}
    if managed & secret_keys:
        raise TemplateSetError(f"{where}: managed_env_keys must not be secrets: {sorted(managed & secret_keys)}")
    return TemplateSet(
        name=name,
        version=version.strip(),
        root=root,
        files=_list_files(root),
        description=str(manifest.get("description", "")),
        secret_keys=secret_keys,
        optional_secret_keys=optional,
        managed_env_keys=frozenset(managed),
        defaults=dict(defaults),
    )


def load_template_set(name: str, extra_dirs: Iterable[str | os.PathLike] = ()) -> TemplateSet:
    """Load the set called ``name`` from ``extra_dirs`` (first match wins) or the bundled sets.

    Raises TemplateSetError (a ValueError) for an invalid name, an unknown set or a malformed set.
    """
    if not isinstance(name, str) or not _SET_NAME.fullmatch(name):
        raise TemplateSetError(f"invalid template set name {name!r} (lower-case letters, digits, '-' and '_')")
    for directory in _search_dirs(extra_dirs):
        root = directory / name
        if (root / MANIFEST).is_file():
            return _read_manifest(root, name)
    raise TemplateSetError(f"unknown template set {name!r}")


def list_template_sets(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[TemplateSet]:
    """Return every loadable set, sorted by name; operator sets shadow bundled ones of the same name.

    A malformed set raises TemplateSetError so operators see the problem rather than a silently missing set.
    """
    found: dict[str, TemplateSet] = {}
    for directory in _search_dirs(extra_dirs):
        if not directory.is_dir():
            continue
        for child in sorted(directory.iterdir()):
            if child.name in found or not _SET_NAME.fullmatch(child.name) or not (child / MANIFEST).is_file():
                continue
            found[child.name] = _read_manifest(child, child.name)
    return [found[name] for name in sorted(found)]
