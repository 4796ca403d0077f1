"""All-or-nothing writes of a set of files, with a journal so a crash at any moment is finished or undone.

Protocol (one set at a time per tenant; the caller holds the tenant lock):
1. journal ``phase=staging`` listing every target and its temp name is written and fsynced;
2. each new content goes to a temp file in the target's own directory (write, fsync) -- a crash here leaves only
   temp files, and recovery deletes them (all-old);
3. journal flips to ``phase=commit`` (atomic replace + fsync): from here recovery rolls forward, since every temp is
   complete on disk;
4. each temp is renamed over its target (deletions unlink), directories fsynced; then the journal is removed.
A failure while staging removes the temps and raises WriteFailed with the originals untouched.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ccp.hostops.errors import WriteFailed

JOURNAL = "journal.json"


@dataclass(frozen=True)
class PlannedWrite:
    """Write ``content`` to ``path`` (``delete=True``: remove it instead). ``mode``/``uid``/``gid`` to apply."""

    path: Path
    content: bytes = b""
    mode: int = 0o644
    uid: int | None = None
    gid: int | None = None
    delete: bool = False


def write_fully(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (the single place file bytes reach the OS; tests inject faults here)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: Path) -> None:
    """fsync a directory so renames/unlinks in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (temp in the same dir, fsync, rename, dir fsync)."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        write_fully(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _temp_name(path: Path, txid: str) -> Path:
    return path.with_name(f".{path.name}.ccp-{txid}")


def _stage(item: PlannedWrite, tmp: Path) -> None:
    item.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        write_fully(fd, item.content)
        if item.uid is not None and os.geteuid() == 0:
            os.fchown(fd, item.uid, item.gid if item.gid is not None else -1)
        os.fchmod(fd, item.mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def _roll_forward(entries: list[dict]) -> None:
    dirs = set()
    for entry in entries:
        target, tmp = Path(entry["path"]), Path(entry["tmp"]) if entry["tmp"] else None
        if entry["delete"]:
            target.unlink(missing_ok=True)
        elif tmp is not None and tmp.exists():
            os.replace(tmp, target)
        dirs.add(target.parent)
    for d in dirs:
        if d.exists():
            fsync_dir(d)


def _discard(entries: list[dict]) -> None:
    for entry in entries:
        if entry["tmp"]:
            Path(entry["tmp"]).unlink(missing_ok=True)


def apply_write_set(state_dir: Path, items: list[PlannedWrite]) -> None:
    """Apply every item or none, durably. Raises WriteFailed (originals intact) if staging fails."""
    txid = secrets.token_hex(6)
    entries = [{"path": str(i.path), "tmp": None if i.delete else str(_temp_name(i.path, txid)),
                "delete": i.delete} for i in items]
    journal = state_dir / JOURNAL
    write_file_atomic(journal, json.dumps({"phase": "staging", "entries": entries}).encode())
    try:
        for item, entry in zip(items, entries, strict=True):
            if not item.delete:
                _stage(item, Path(entry["tmp"]))
    except OSError as exc:
        _discard(entries)
        journal.unlink(missing_ok=True)
        reason = errno.errorcode.get(exc.errno or 0, "error")
        raise WriteFailed(f"could not write {item.path.name} ({reason}: {exc.strerror}); no file was changed") \
            from exc
    write_file_atomic(journal, json.dumps({"phase": "commit", "entries": entries}).encode())
    _roll_forward(entries)
    journal.unlink()
    fsync_dir(state_dir)


def recover(state_dir: Path) -> str | None:
    """Finish (phase commit) or undo (phase staging) a write set interrupted by a crash.

    Returns "rolled_forward", "rolled_back" or None when there was nothing to do. Idempotent: safe to run again
    if it is itself interrupted.
    """
    journal = state_dir / JOURNAL
    try:
        data = json.loads(journal.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        # A torn journal can only come from the staging write (the commit flip is an atomic replace).
        data = {"phase": "staging", "entries": []}
    if data.get("phase") == "commit":
        _roll_forward(data["entries"])
        outcome = "rolled_forward"
    else:
        _discard(data.get("entries", []))
        outcome = "rolled_back"
    journal.unlink(missing_ok=True)
    fsync_dir(state_dir)
    return outcome
