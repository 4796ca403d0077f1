"""Snapshots: copies of the files a change is about to touch (mode 0600), plus which files it created."""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from ccp.hostops.atomic import fsync_dir, write_file_atomic
from ccp.hostops.errors import NotFound

SNAPSHOT_ID_RE = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{8}$")
MANIFEST = "manifest.json"


def new_snapshot_id() -> str:
    """Return a fresh id that sorts by creation time (UTC, microseconds) and is unique."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1_000_000):06d}"
    return f"{stamp}-{secrets.token_hex(4)}"


class SnapshotStore:
    """Snapshots under ``<state_dir>/snapshots/<id>/``: ``manifest.json`` and ``files/<n>`` copies, all 0600."""

    def __init__(self, state_dir: Path, keep: int = 5):
        self.root = state_dir / "snapshots"
        self.keep = max(1, int(keep))

    def _dir(self, snapshot_id: str) -> Path:
        if not isinstance(snapshot_id, str) or not SNAPSHOT_ID_RE.match(snapshot_id):
            raise NotFound("unknown snapshot id")
        path = self.root / snapshot_id
        if not (path / MANIFEST).is_file():
            raise NotFound(f"snapshot {snapshot_id} not found (only the last {self.keep} are kept)")
        return path

    def load(self, snapshot_id: str) -> dict:
        """Return the manifest ``{"files": {rel: {"copy", "mode", "uid", "gid", "sha256"}}, "created": [rel]}``.

        Raises NotFound for an unknown or pruned id.
        """
        return json.loads((self._dir(snapshot_id) / MANIFEST).read_bytes())

    def read_copy(self, snapshot_id: str, copy_name: str) -> bytes:
        """Return the saved bytes of one file of a snapshot."""
        return (self._dir(snapshot_id) / "files" / copy_name).read_bytes()

    def create(self, install_dir: Path, rels: dict[str, Path], snapshot_id: str | None = None) -> str:
        """Save the current state of ``rels`` ({relpath: resolved path}) and return the snapshot id.

        Existing files are copied; missing ones are recorded as "created" (a restore removes them). With
        ``snapshot_id`` of an existing snapshot, files it does not hold yet are added to it (so one restore undoes
        both a files write and an env patch). Copies are fsynced before the manifest, which is written last.
        """
        if snapshot_id is None:
            snapshot_id = new_snapshot_id()
            manifest = {"files": {}, "created": []}
            sdir = self.root / snapshot_id
            (sdir / "files").mkdir(parents=True, mode=0o700)
            os.chmod(self.root, 0o700)
        else:
            manifest = self.load(snapshot_id)
            sdir = self.root / snapshot_id
        for rel, path in rels.items():
            if rel in manifest["files"] or rel in manifest["created"]:
                continue
            if not path.exists():
                manifest["created"].append(rel)
                continue
            data = path.read_bytes()
            st = path.stat()
            copy_name = f"{len(manifest['files']):04d}"
            write_file_atomic(sdir / "files" / copy_name, data, 0o600)
            manifest["files"][rel] = {"copy": copy_name, "mode": st.st_mode & 0o7777, "uid": st.st_uid,
                                      "gid": st.st_gid, "sha256": hashlib.sha256(data).hexdigest()}
        write_file_atomic(sdir / MANIFEST, json.dumps(manifest, sort_keys=True).encode(), 0o600)
        fsync_dir(self.root)
        self.prune()
        return snapshot_id

    def list_ids(self) -> list[str]:
        """Return complete snapshot ids, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if SNAPSHOT_ID_RE.match(p.name)
                      and (p / MANIFEST).is_file())

    def prune(self) -> None:
        """Delete all but the newest ``keep`` snapshots (and any incomplete ones left by a crash)."""
        if not self.root.is_dir():
            return
        complete = self.list_ids()
        for p in self.root.iterdir():
            if p.name not in complete or p.name in complete[: -self.keep]:
                shutil.rmtree(p, ignore_errors=True)
