"""TenantHost: every operation CCP can ask of one tenant's install dir, returning protocol-ready dicts.

Both the agent (over signed HTTP) and CCP's in-process LocalDriver call this class, so they behave identically.
Mutations (write_files, env_patch, restore_snapshot) take the tenant lock and check the fence; reads do not lock.
Hooks, backups and restores (ccp.hostops.hooks) check the fence under the lock, then run without holding it, like
compose does.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ccp.envfile.dotenv import MASK, mask_env_text
from ccp.envfile.secrecy import compare_env
from ccp.hostops import compose as compose_mod
from ccp.hostops import envops, hooks, scripts
from ccp.hostops.errors import BadRequest, ExpectationFailed, HostOpsError, TooLarge
from ccp.hostops.atomic import PlannedWrite, apply_write_set, recover
from ccp.hostops.diff import split_lines, unified_diff
from ccp.hostops.snapshots import SnapshotStore
from ccp.hostops.locking import check_and_store_fence, tenant_lock
from ccp.hostops.paths import resolve_inside

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
NEW_FILE_MODE = 0o644
MAX_FILES = 200
MAX_FILE_BYTES = 4 * 1024 * 1024


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def is_env_path(relpath: str) -> bool:
    """True for files whose diffs must be masked: ``.env``, ``.env.*`` and ``*.env`` (any directory)."""
    name = relpath.rsplit("/", 1)[-1]
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


class TenantHost:
    """Host-side operations on one tenant install dir. See the module docstring for the locking rules."""

    def __init__(self, install_dir, project: str, *, compose_command: list[str] | None = None,
                 compose_files: tuple[str, ...] = ("docker-compose.yml",), snapshot_keep: int = 5,
                 state_dir=None, diff_limit_bytes: int = 256 * 1024, max_files: int = MAX_FILES,
                 max_file_bytes: int = MAX_FILE_BYTES, lock_wait_s: float = 2.0):
        self.install_dir = Path(install_dir).resolve()
        if not self.install_dir.is_dir():
            raise BadRequest(f"install dir {self.install_dir} does not exist")
        self.project = project
        self.state_dir = Path(state_dir) if state_dir is not None else self.install_dir / ".ccp"
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.snapshots = SnapshotStore(self.state_dir, snapshot_keep)
        self.hooks = hooks.HookRunner(self.install_dir, project, self.state_dir)
        self.compose_spec = compose_mod.ComposeSpec(self.install_dir, project, tuple(compose_files),
                                                    list(compose_command) if compose_command else None)
        self.diff_limit_bytes = diff_limit_bytes
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.lock_wait_s = lock_wait_s

    # -- helpers -------------------------------------------------------------------------------------------------
    def _resolve_all(self, relpaths) -> dict[str, Path]:
        if len(relpaths) > self.max_files:
            raise TooLarge(f"{len(relpaths)} files in one request; the limit is {self.max_files}")
        resolved = {rel: resolve_inside(self.install_dir, rel) for rel in relpaths}
        for rel, path in resolved.items():
            if path.exists() and not path.is_file():
                raise BadRequest(f"{rel} exists and is not a regular file")
        return resolved

    def _check_content(self, rel: str, content: object) -> bytes:
        if not isinstance(content, str):
            raise BadRequest(f"content of {rel} must be a string")
        data = content.encode("utf-8", "surrogatepass")
        if len(data) > self.max_file_bytes:
            raise TooLarge(f"{rel} is {len(data)} bytes; the limit is {self.max_file_bytes}")
        return data

    @property
    def env_path(self) -> Path:
        return resolve_inside(self.install_dir, envops.ENV_FILE)

    def _secret_values(self) -> list[str]:
        try:
            return envops.secret_values(self.env_path, min_len=8)
        except HostOpsError:  # .env unreadable or a symlink leaving the dir: nothing we may read to mask
            return []

    def _mask_output(self, result: dict) -> dict:
        """Hide .env values that a command may have printed."""
        tail = result.get("output_tail", "")
        for value in self._secret_values():
            tail = tail.replace(value, MASK)
        result["output_tail"] = tail
        return result

    def _masked(self, on_output):
        """`on_output` behind the same masking, for output passed on while a command runs (whole lines: a value
        is never split between two calls). The .env is read once, before the command (it may rewrite it)."""
        if on_output is None:
            return None
        values = self._secret_values()

        def masked(text: str) -> None:
            for value in values:
                text = text.replace(value, MASK)
            on_output(text)
        return masked

    # -- reads ---------------------------------------------------------------------------------------------------
    def diff_files(self, files: dict, env_secret_keys: object = None) -> dict:
        """Compare proposed contents ({relpath: text}) with disk; .env-like files are diffed with the values of
        secret keys masked (ccp.envfile.secrecy's rule; all values when the file does not parse).

        An .env-like file's entry also has `env`: its per-key comparison (ccp.envfile.secrecy.compare_env), with the
        values of secret keys withheld; `env_secret_keys` names keys to treat as secret beyond the rule's own (the
        template set's secrets). `env` is None when either side is not a valid .env.
        Raises PathRefused, BadRequest or TooLarge for bad input (nothing is read before the paths are checked).
        """
        if not isinstance(files, dict) or not files:
            raise BadRequest("'files' must be a non-empty object of relpath: content")
        secret_keys = envops.checked_key_list(env_secret_keys, "env_secret_keys")
        resolved = self._resolve_all(list(files))
        out = {}
        for rel, path in resolved.items():
            new_bytes = self._check_content(rel, files[rel])
            old_bytes = path.read_bytes() if path.exists() else None
            new_text = files[rel]
            old_text = old_bytes.decode("utf-8", "replace") if old_bytes is not None else ""
            show, env = {}, None
            if is_env_path(rel):
                rows = compare_env(old_text, new_text, secret_keys)
                env = None if rows is None else [row.as_dict() for row in rows]
                old_shown = {r.key: r.old for r in rows or () if r.old is not None}
                new_shown = {r.key: r.new for r in rows or () if r.new is not None}
                show = {"show_old": split_lines(mask_env_text(old_text, old_shown))[0],
                        "show_new": split_lines(mask_env_text(new_text, new_shown))[0]}
            result = unified_diff(old_text, new_text, old_label=f"a/{rel}" if old_bytes is not None else "/dev/null",
                                  new_label=f"b/{rel}", limit_bytes=self.diff_limit_bytes, **show)
            status = "created" if old_bytes is None else "unchanged" if old_bytes == new_bytes else "modified"
            out[rel] = {"status": status, "old_sha256": sha256_hex(old_bytes) if old_bytes is not None else None,
                        "new_sha256": sha256_hex(new_bytes), "added": result.added, "removed": result.removed,
                        "diff": result.text, "truncated": result.truncated}
            if is_env_path(rel):
                out[rel]["env"] = env
        return {"files": out}

    def env_keys(self, values_of: object = None) -> dict:
        """Return ``{"keys": [names], "exists": bool, "values": {...}}`` for the tenant .env: the values are those of
        the keys named in ``values_of`` that are not secret (ccp.envfile.secrecy); no other value leaves the host."""
        return envops.env_keys(self.env_path, values_of)

    # -- mutations -----------------------------------------------------------------------------------------------
    def write_files(self, files: dict, fence: int) -> dict:
        """Snapshot, then write every file or none. Returns ``{"snapshot_id", "written", "created"}``.

        Raises PathRefused/BadRequest/TooLarge for bad input, FenceRejected, Busy, ExpectationFailed (an
        ``expect_sha256`` differs from disk: nothing written) and WriteFailed (originals kept).
        """
        if not isinstance(files, dict) or not files:
            raise BadRequest("'files' must be a non-empty object of relpath: {content, expect_sha256}")
        resolved = self._resolve_all(list(files))
        payload = {}
        for rel, spec in files.items():
            if not isinstance(spec, dict) or set(spec) - {"content", "expect_sha256"}:
                raise BadRequest(f"{rel} must be an object with 'content' and optional 'expect_sha256'")
            expect = spec.get("expect_sha256")
            if expect is not None and (not isinstance(expect, str) or not SHA256_RE.match(expect)):
                raise BadRequest(f"expect_sha256 of {rel} must be 64 lowercase hex digits or null")
            payload[rel] = (self._check_content(rel, spec.get("content")), expect)
        with tenant_lock(self.state_dir, self.lock_wait_s):
            check_and_store_fence(self.state_dir, fence)
            recover(self.state_dir)
            mismatched = []
            for rel, (_, expect) in payload.items():
                if expect is not None:
                    path = resolved[rel]
                    actual = sha256_hex(path.read_bytes()) if path.exists() else None
                    if actual != expect:
                        mismatched.append(rel)
            if mismatched:
                raise ExpectationFailed("files changed on the host since the preview: " + ", ".join(mismatched),
                                        details={"paths": mismatched})
            created = [rel for rel, path in resolved.items() if not path.exists()]
            snapshot_id = self.snapshots.create(self.install_dir, resolved)
            items = [self._planned(resolved[rel], data, rel) for rel, (data, _) in payload.items()]
            apply_write_set(self.state_dir, items)
        return {"snapshot_id": snapshot_id, "written": sorted(payload), "created": sorted(created)}

    def _planned(self, path: Path, data: bytes, rel: str) -> PlannedWrite:
        if path.exists():
            st = path.stat()
            return PlannedWrite(path, data, st.st_mode & 0o7777, st.st_uid, st.st_gid)
        return PlannedWrite(path, data, 0o600 if is_env_path(rel) else NEW_FILE_MODE)

    def env_patch(self, set: dict, fence: int, snapshot_id: str | None = None) -> dict:
        """Patch the .env in place (atomic, snapshot first). Returns ``{"snapshot_id", "changed", "appended"}``.

        With ``snapshot_id`` of an existing snapshot, the .env is added to it (one restore then undoes both the
        files write and this patch). When nothing changes no file is written, and the snapshot id is still
        returned. Raises BadRequest (names the key, never the value), FenceRejected, Busy, NotFound, WriteFailed.
        """
        path = self.env_path
        with tenant_lock(self.state_dir, self.lock_wait_s):
            check_and_store_fence(self.state_dir, fence)
            recover(self.state_dir)
            old, new, changed, appended = envops.plan_env_patch(path, set)
            snap = self.snapshots.create(self.install_dir, {envops.ENV_FILE: path}, snapshot_id)
            if new != old:
                apply_write_set(self.state_dir, [self._planned(path, new.encode("utf-8"), envops.ENV_FILE)])
        return {"snapshot_id": snap, "changed": changed, "appended": appended}

    def restore_snapshot(self, snapshot_id: str, fence: int | None = None) -> dict:
        """Put every file of the snapshot back and remove the files it recorded as created, atomically.

        Returns ``{"restored": [...], "removed": [...]}``. Raises NotFound, Busy, FenceRejected (if a fence is given),
        PathRefused (a file now resolves outside the install dir), WriteFailed.
        """
        with tenant_lock(self.state_dir, self.lock_wait_s):
            if fence is not None:
                check_and_store_fence(self.state_dir, fence)
            recover(self.state_dir)
            manifest = self.snapshots.load(snapshot_id)
            items, restored, removed = [], [], []
            for rel, meta in sorted(manifest["files"].items()):
                data = self.snapshots.read_copy(snapshot_id, meta["copy"])
                items.append(PlannedWrite(resolve_inside(self.install_dir, rel), data, meta["mode"], meta["uid"],
                                          meta["gid"]))
                restored.append(rel)
            for rel in sorted(manifest["created"]):
                path = resolve_inside(self.install_dir, rel)
                if path.exists():
                    items.append(PlannedWrite(path, delete=True))
                    removed.append(rel)
            if items:
                apply_write_set(self.state_dir, items)
        return {"restored": restored, "removed": removed}

    def recover(self) -> str | None:
        """Finish or undo a write set interrupted by a crash (call at start). Returns what was done, or None."""
        with tenant_lock(self.state_dir, max(self.lock_wait_s, 30.0)):
            return recover(self.state_dir)

    # -- commands ------------------------------------------------------------------------------------------------
    def compose(self, action: str, deadline_s: float, on_output=None) -> dict:
        """Run ``docker compose <action>`` (pull/up/ps/down) with a deadline; see compose.run_compose. Its output
        goes to ``on_output`` (masked) as it is written, when given."""
        deadline_s = _check_deadline(deadline_s)
        return self._mask_output(compose_mod.run_compose(self.compose_spec, action, deadline_s,
                                                         self._masked(on_output)))

    def run_script(self, name: str, deadline_s: float, on_output=None) -> dict:
        """Run an allow-listed tenant script (upgrade, image-upgrade) with a deadline; see scripts.run_script."""
        deadline_s = _check_deadline(deadline_s)
        return self._mask_output(scripts.run_script(self.install_dir, self.project, name, deadline_s,
                                                    self._masked(on_output)))

    # -- template-set hooks and data backups (ccp.hostops.hooks) -------------------------------------------------
    def _fenced(self, fence: object) -> int:
        with tenant_lock(self.state_dir, self.lock_wait_s):
            check_and_store_fence(self.state_dir, fence)
        return fence

    def run_hook(self, hook: object, content: object, deadline_s: float, fence: object, from_tag: object = None,
                 to_tag: object = None) -> dict:
        """Run a template-set hook (``pre_upgrade``, ``post_upgrade``) CCP sent, with a deadline; the run dict
        (output masked). Raises BadRequest (names what is wrong; nothing run) or FenceRejected/Busy."""
        if hook not in hooks.HOOKS:
            raise BadRequest(f"hook must be one of {', '.join(hooks.HOOKS)}")
        content, deadline_s = hooks.check_hook_content(content), _check_deadline(deadline_s)
        tags = hooks.check_tags(from_tag, to_tag)
        fence = self._fenced(fence)
        return self._mask_output(self.hooks.run(hook, content, deadline_s, fence, tags))

    def create_backup(self, content: object, deadline_s: float, fence: object, keep: object = 3,
                      from_tag: object = None, to_tag: object = None) -> dict:
        """Run the set's backup hook into a new backup folder, keep the newest ``keep``; the run dict plus
        ``backup_id`` and ``size_bytes`` (both null when the hook failed or wrote nothing: the folder is removed)."""
        content, deadline_s = hooks.check_hook_content(content), _check_deadline(deadline_s)
        keep, tags = hooks.check_keep(keep), hooks.check_tags(from_tag, to_tag)
        fence = self._fenced(fence)
        return self._mask_output(self.hooks.backup(content, deadline_s, fence, tags, keep))

    def restore_backup(self, backup_id: object, content: object, deadline_s: float, fence: object,
                       from_tag: object = None, to_tag: object = None) -> dict:
        """Run the set's restore hook with CCP_BACKUP_DIR at backup ``backup_id``; the run dict plus ``backup_id``.
        Raises NotFound for an unknown or pruned backup (nothing run), BadRequest, FenceRejected, Busy."""
        content, deadline_s = hooks.check_hook_content(content), _check_deadline(deadline_s)
        tags = hooks.check_tags(from_tag, to_tag)
        self.hooks.folder(backup_id)  # an unknown id is refused before the fence moves
        fence = self._fenced(fence)
        return self._mask_output(self.hooks.restore(backup_id, content, deadline_s, fence, tags))

    def list_backups(self) -> dict:
        """``{"backups": [{"id", "created", "size_bytes", "duration_s", "upgrade_id"}]}``, oldest first."""
        return {"backups": self.hooks.backups()}


def _check_deadline(deadline_s: object) -> float:
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or not 0 < deadline_s <= 6 * 3600:
        raise BadRequest("deadline_s must be a number of seconds between 0 and 21600")
    return float(deadline_s)
