"""Path confinement: every relative path from CCP is resolved inside the tenant's install dir or refused."""
from __future__ import annotations

import os
from pathlib import Path

from ccp.hostops.errors import PathRefused

MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
# The agent's own state may live in the install dir; CCP must never read or write it.
RESERVED_TOP = {".ccp"}


def check_relpath(relpath: object) -> list[str]:
    """Return the components of a relative path after purely lexical checks (no I/O).

    Raises PathRefused for a non-string, empty, over-long, absolute path, a NUL byte, a backslash, or an empty,
    ``.`` or ``..`` component, or a reserved top-level name.
    """
    if not isinstance(relpath, str) or not relpath:
        raise PathRefused("path must be a non-empty string")
    shown = relpath[:80].encode("unicode_escape").decode()
    if len(relpath) > MAX_PATH_CHARS:
        raise PathRefused(f"path too long: {shown}...")
    if "\x00" in relpath:
        raise PathRefused(f"path contains a NUL byte: {shown}")
    if "\\" in relpath:
        raise PathRefused(f"path contains a backslash: {shown}")
    if relpath.startswith("/") or os.path.isabs(relpath):
        raise PathRefused(f"absolute paths are refused: {shown}")
    parts = relpath.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise PathRefused(f"path must not contain empty, '.' or '..' components: {shown}")
        if len(part) > MAX_COMPONENT_CHARS:
            raise PathRefused(f"path component too long: {shown}")
    if parts[0] in RESERVED_TOP:
        raise PathRefused(f"path is reserved for the agent: {shown}")
    return parts


def resolve_inside(root: Path, relpath: str) -> Path:
    """Return the real path of ``relpath`` inside ``root``, following symlinks only while they stay inside.

    Lexical checks run first, then symlinks along the path are resolved (lstat/readlink only; nothing is opened,
    created or written). Raises PathRefused if the result is ``root`` itself or anywhere outside it.
    """
    parts = check_relpath(relpath)
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(real_root.joinpath(*parts)))
    if target == real_root or real_root not in target.parents:
        raise PathRefused(f"path leads outside the install dir: {relpath[:80]!r}")
    return target
