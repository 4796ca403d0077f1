"""Template-set hooks and data backups, run on the tenant host (issue #16).

CCP sends the *rendered* content of a hook its template set declares (ccp.rendering.sets: ``[hooks]``, ``[backup]``);
nothing else can run. The content is written to a private file under the tenant's state folder (``hooks/``, 0700
dir, 0600 file), run with ``sh`` in the install dir within a deadline (ccp.hostops.process.run_with_deadline), and
removed again. Its environment: the agent's own minus ``CCP_AGENT_*``, plus

    CCP_HOOK              pre_upgrade | post_upgrade | backup | restore
    CCP_FROM_TAG          the tag the tenant ran before the upgrade ('' when unknown)
    CCP_TO_TAG            the tag the upgrade applies
    CCP_UPGRADE_ID        the upgrade id (= the fence the call carries)
    CCP_BACKUP_DIR        backup and restore only: the backup's data folder
    COMPOSE_PROJECT_NAME  the instance's compose project

Backups live under ``<state_dir>/backups/<id>/``: ``data/`` (what the hook wrote, = CCP_BACKUP_DIR) and
``backup.json`` (created, size, duration, upgrade id), written last: a folder without it is incomplete and is
removed at the next prune. A backup id is ``<upgrade id>-<UTC time>``; the newest ``keep`` complete backups are kept.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path

from ccp.hostops.atomic import write_file_atomic
from ccp.hostops.errors import BadRequest, NotFound
from ccp.hostops.process import run_with_deadline, scrubbed_env
from ccp.rules import TAG

HOOKS = ("pre_upgrade", "post_upgrade")
MAX_HOOK_BYTES = 64 * 1024
MAX_KEEP = 50
BACKUP_ID_RE = re.compile(r"^(\d{1,10})-(\d{8}T\d{6}Z)(?:-(\d+))?$")
BACKUP_META = "backup.json"


def check_hook_content(content: object) -> str:
    """The hook's script text, or BadRequest: a non-empty string of at most MAX_HOOK_BYTES UTF-8 bytes, no NUL."""
    if not isinstance(content, str) or not content.strip():
        raise BadRequest("'content' must be the hook's script text (a non-empty string)")
    if "\x00" in content:
        raise BadRequest("'content' must not contain a NUL byte")
    if len(content.encode("utf-8", "surrogatepass")) > MAX_HOOK_BYTES:
        raise BadRequest(f"'content' is larger than {MAX_HOOK_BYTES} bytes")
    return content


def check_tags(from_tag: object, to_tag: object) -> tuple[str, str]:
    """The upgrade's tags for CCP_FROM_TAG/CCP_TO_TAG: image tags (ccp.rules.TAG) or empty; BadRequest otherwise."""
    out = []
    for name, value in (("from_tag", from_tag), ("to_tag", to_tag)):
        if value is None or value == "":
            out.append("")
        elif isinstance(value, str) and TAG.fullmatch(value):
            out.append(value)
        else:
            raise BadRequest(f"'{name}' must be an image tag or empty")
    return out[0], out[1]


def check_keep(keep: object) -> int:
    """How many backups to keep: an integer from 1 to MAX_KEEP, or BadRequest."""
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP:
        raise BadRequest(f"'keep' must be an integer from 1 to {MAX_KEEP}")
    return keep


def new_backup_id(upgrade_id: int, root: Path) -> str:
    """``<upgrade id>-<UTC YYYYmmddTHHMMSSZ>``, with ``-n`` added in the rare case that folder exists already."""
    base = f"{upgrade_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    candidate, n = base, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def folder_size(path: Path) -> int:
    """Bytes of every regular file under ``path`` (symlinks are neither followed nor counted)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


class HookRunner:
    """Runs one tenant's hooks, backups and restores; the caller (TenantHost) checks the fence first."""

    def __init__(self, install_dir: Path, project: str, state_dir: Path) -> None:
        self.install_dir = install_dir
        self.project = project
        self.hooks_dir = state_dir / "hooks"
        self.backups_dir = state_dir / "backups"

    def run(self, hook: str, content: str, deadline_s: float, upgrade_id: int, tags: tuple[str, str],
            backup_dir: Path | None = None) -> dict:
        """Write ``content`` to a private file, run it with ``sh`` in the install dir, remove it.

        Returns run_with_deadline's dict (output not masked yet: TenantHost masks it)."""
        self.hooks_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.hooks_dir, 0o700)
        script = self.hooks_dir / f"{hook}-{upgrade_id}-{secrets.token_hex(4)}.sh"
        write_file_atomic(script, content.encode("utf-8", "surrogatepass"), 0o600)
        env = {"CCP_HOOK": hook, "CCP_FROM_TAG": tags[0], "CCP_TO_TAG": tags[1], "CCP_UPGRADE_ID": str(upgrade_id),
               "COMPOSE_PROJECT_NAME": self.project}
        if backup_dir is not None:
            env["CCP_BACKUP_DIR"] = str(backup_dir)
        try:
            return run_with_deadline(["/bin/sh", str(script)], self.install_dir, deadline_s, env=scrubbed_env(env))
        except OSError as exc:
            raise BadRequest(f"cannot run the {hook} hook: {exc.strerror}") from exc
        finally:
            script.unlink(missing_ok=True)

    def backup(self, content: str, deadline_s: float, upgrade_id: int, tags: tuple[str, str], keep: int) -> dict:
        """Run the backup hook into a new backup folder; keep it (and prune to ``keep``) only when the hook succeeded
        and wrote something. Returns the run dict plus ``backup_id``, ``size_bytes`` (null when it failed)."""
        self.backups_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.backups_dir, 0o700)
        backup_id = new_backup_id(upgrade_id, self.backups_dir)
        folder = self.backups_dir / backup_id
        data = folder / "data"
        data.mkdir(parents=True, mode=0o700)
        result = self.run("backup", content, deadline_s, upgrade_id, tags, backup_dir=data)
        size = folder_size(data)
        if result["ok"] and size == 0:
            result["ok"] = False
            result["output_tail"] = (result["output_tail"] + "\nthe backup hook wrote nothing into "
                                     "$CCP_BACKUP_DIR: no backup kept").lstrip("\n")
        if not result["ok"]:
            shutil.rmtree(folder, ignore_errors=True)
            return {**result, "backup_id": None, "size_bytes": None}
        meta = {"id": backup_id, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "size_bytes": size, "duration_s": result["duration_s"], "upgrade_id": upgrade_id,
                "from_tag": tags[0], "to_tag": tags[1]}
        write_file_atomic(folder / BACKUP_META, json.dumps(meta, sort_keys=True).encode(), 0o600)
        self.prune(keep)
        return {**result, "backup_id": backup_id, "size_bytes": size}

    def restore(self, backup_id: str, content: str, deadline_s: float, upgrade_id: int,
                tags: tuple[str, str]) -> dict:
        """Run the restore hook with CCP_BACKUP_DIR at the backup's data. Raises NotFound for an unknown id."""
        folder = self.folder(backup_id)
        return {**self.run("restore", content, deadline_s, upgrade_id, tags, backup_dir=folder / "data"),
                "backup_id": backup_id}

    def backups(self) -> list[dict]:
        """Complete backups, oldest first: ``{"id", "created", "size_bytes", "duration_s", "upgrade_id"}``."""
        out = []
        if not self.backups_dir.is_dir():
            return out
        for path in self.backups_dir.iterdir():
            meta = self._meta(path)
            if meta is not None:
                out.append({k: meta.get(k) for k in ("id", "created", "size_bytes", "duration_s", "upgrade_id")})
        return sorted(out, key=lambda m: (str(m["created"]), m["upgrade_id"] or 0, m["id"]))

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` complete backups, and incomplete folders; returns the ids deleted."""
        keep_ids = {m["id"] for m in self.backups()[-keep:]}
        deleted = []
        for path in self.backups_dir.iterdir():
            if path.name not in keep_ids:
                shutil.rmtree(path, ignore_errors=True)
                deleted.append(path.name)
        return sorted(deleted)

    def folder(self, backup_id: object) -> Path:
        """The folder of a complete backup, or NotFound (an id of the wrong shape too)."""
        if not isinstance(backup_id, str) or not BACKUP_ID_RE.match(backup_id):
            raise NotFound("unknown backup id")
        folder = self.backups_dir / backup_id
        if self._meta(folder) is None:
            raise NotFound(f"backup {backup_id} not found (only the last ones the template set keeps are kept)")
        return folder

    @staticmethod
    def _meta(folder: Path) -> dict | None:
        if not BACKUP_ID_RE.match(folder.name) or folder.is_symlink() or not folder.is_dir():
            return None
        try:
            meta = json.loads((folder / BACKUP_META).read_bytes())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and meta.get("id") == folder.name else None
