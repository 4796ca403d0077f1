"""Template sets: a named folder of files plus a small ``set.toml``.

Layout of a set folder::

    <name>/set.toml          version = "1.2.0" (required), description, secret_keys, managed_env_keys, [defaults],
                             [hooks] and [backup] (optional; see below)
    <name>/**/*.j2           rendered with Jinja2; output path drops ".j2"
    <name>/**/<other>        copied byte-for-byte

Bundled sets live next to this module in ``sets/``; operators add sets in their own directories (the configured
CCP_TEMPLATE_SETS_DIR, passed in as ``extra_dirs``). A set in an operator directory overrides a bundled set of the
same name, so operators can customise ``default`` without forking CCP.

Hooks and backup (issue #16; docs/templates.md): only what a set declares can run on a tenant host::

    [hooks]
    pre_upgrade = { run = "hooks/pre-upgrade.sh", deadline_s = 120 }
    post_upgrade = { run = "hooks/post-upgrade.sh", deadline_s = 120 }
    [backup]
    run = "hooks/backup.sh"          # writes into $CCP_BACKUP_DIR
    restore = "hooks/restore.sh"     # reads from $CCP_BACKUP_DIR
    keep = 3
    deadline_s = 900

Each ``run``/``restore`` names a file of the set (its source path; ``x.sh`` also finds ``x.sh.j2``); the release
renders it like any other file and CCP sends that rendered text to the agent to run.
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


HOOK_NAMES = ("pre_upgrade", "post_upgrade")
MAX_HOOK_DEADLINE_S = 3600.0
MAX_BACKUP_DEADLINE_S = 6 * 3600.0
MAX_BACKUP_KEEP = 50  # the agent's own limit (ccp.hostops.hooks.MAX_KEEP)


class TemplateSetError(ValueError):
    """A template set is missing, misnamed or malformed."""


@dataclass(frozen=True)
class Hook:
    """A command the set declares: ``source`` is its file in the set, ``output`` the rendered path."""

    source: str
    deadline_s: float

    @property
    def output(self) -> str:
        return TemplateSet.output_path(self.source)


@dataclass(frozen=True)
class Backup:
    """The set's data backup: ``run`` writes into $CCP_BACKUP_DIR, ``restore`` reads from it; keep the last ``keep``."""

    run: Hook
    restore: Hook
    keep: int = 3


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
    hooks: dict[str, Hook] = field(default_factory=dict)  # "pre_upgrade"/"post_upgrade" -> Hook, when declared
    backup: Backup | None = None

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
    files = _list_files(root)
    hooks, backup = _read_hooks(manifest, files, where)
    return TemplateSet(
        name=name,
        version=version.strip(),
        root=root,
        files=files,
        hooks=hooks,
        backup=backup,
        description=str(manifest.get("description", "")),
        secret_keys=secret_keys,
        optional_secret_keys=optional,
        managed_env_keys=frozenset(managed),
        defaults=dict(defaults),
    )


def _hook_file(value: object, files: tuple[str, ...], what: str, where: str) -> str:
    """The set file a hook runs: ``value`` as listed in the set, or the template ``value + ".j2"``."""
    if not isinstance(value, str) or not value.strip():
        raise TemplateSetError(f"{where}: {what} must name a file of the set (e.g. \"hooks/backup.sh\")")
    source = value if value in files else value + ".j2" if value + ".j2" in files else None
    if source is not None and TemplateSet.output_path(source).rsplit("/", 1)[-1].startswith(".env"):
        raise TemplateSetError(f"{where}: {what} = {value!r} renders an .env file, which is never sent to run")
    if source is not None:
        return source
    raise TemplateSetError(f"{where}: {what} = {value!r} is not a file of the set (paths are relative to the set "
                           "folder, e.g. \"hooks/backup.sh\")")


def _deadline(value: object, default: float, limit: float, what: str, where: str) -> float:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= limit:
        raise TemplateSetError(f"{where}: {what} must be a number of seconds above 0 and at most {limit:g}")
    return float(value)


def _read_hooks(manifest: dict, files: tuple[str, ...], where: str) -> tuple[dict[str, Hook], Backup | None]:
    """The [hooks] and [backup] tables, checked: known names and keys only, files of the set, bounded deadlines."""
    table = manifest.get("hooks", {})
    if not isinstance(table, dict):
        raise TemplateSetError(f"{where}: [hooks] must be a table")
    hooks = {}
    for name, spec in table.items():
        if name not in HOOK_NAMES:
            raise TemplateSetError(f"{where}: unknown hook {name!r} in [hooks] (known: {', '.join(HOOK_NAMES)})")
        if not isinstance(spec, dict) or set(spec) - {"run", "deadline_s"}:
            raise TemplateSetError(f"{where}: hooks.{name} must be {{ run = \"file\", deadline_s = seconds }}")
        hooks[name] = Hook(_hook_file(spec.get("run"), files, f"hooks.{name}.run", where),
                           _deadline(spec.get("deadline_s"), 120.0, MAX_HOOK_DEADLINE_S, f"hooks.{name}.deadline_s",
                                     where))
    spec = manifest.get("backup")
    if spec is None:
        return hooks, None
    if not isinstance(spec, dict) or set(spec) - {"run", "restore", "keep", "deadline_s"}:
        raise TemplateSetError(f"{where}: [backup] takes run, restore, keep and deadline_s")
    if "restore" not in spec:
        raise TemplateSetError(f"{where}: [backup] needs restore (a backup nobody can restore is not a backup)")
    keep = spec.get("keep", 3)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_BACKUP_KEEP:
        raise TemplateSetError(f"{where}: backup.keep must be an integer from 1 to {MAX_BACKUP_KEEP}")
    deadline = _deadline(spec.get("deadline_s"), 900.0, MAX_BACKUP_DEADLINE_S, "backup.deadline_s", where)
    backup = Backup(Hook(_hook_file(spec.get("run"), files, "backup.run", where), deadline),
                    Hook(_hook_file(spec.get("restore"), files, "backup.restore", where), deadline), keep)
    return hooks, backup


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
