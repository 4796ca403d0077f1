"""The driver protocol: what CCP asks of a tenant host, the typed errors every driver raises, and the typed diff.

The answers are the agent protocol's JSON objects (docs/agent.md "Endpoints"), except the diff, which both drivers
turn into `FileDiff`s once: that object travels unchanged to the API and the preview dialog. The remote and the
local driver are interchangeable and share one test suite (tests/drivers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ccp.envfile.secrecy import EnvChange, checked_changes


class DriverError(Exception):
    """A tenant host refused or failed an operation. `status`/`code` mirror the agent's HTTP error."""

    def __init__(self, message: str, *, status: int = 500, code: str = "driver_error", target: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.target = target


class AgentUnreachable(DriverError):
    """The agent did not answer (connection refused, timeout, DNS): nothing was done by this call."""


class AgentAuthFailed(DriverError):
    """The agent rejected CCP's signature (wrong key id/key, clock skew)."""


class AgentRejected(DriverError):
    """The agent answered with an error (400/404/409/413...); `message` is the agent's own message."""


@dataclass(frozen=True)
class FileDiff:
    """How one proposed file compares with the file on the host.

    `status` is "unchanged", "modified" or "created"; `old_sha256` is None for a file the host does not have.
    `diff` is a unified diff in which .env-like files show masked values; when it was too large to send the host
    cut it (`truncated`), while `added`/`removed` still count the whole change. `env` is an .env-like file's per-key
    comparison with secret values withheld (None for other files, and from agents without "files.diff.env").
    """

    path: str
    status: str
    old_sha256: str | None
    new_sha256: str | None
    added: int
    removed: int
    diff: str
    truncated: bool
    env: tuple[EnvChange, ...] | None = None

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"

    @classmethod
    def from_answer(cls, answer: dict, env_secret_keys=()) -> dict[str, FileDiff]:
        """The FileDiffs of a files/diff answer (`{"files": {relpath: entry}}`), by path.

        An `env` table is re-masked here by the same rule the host used (ccp.envfile.secrecy.checked_changes)."""
        return {path: cls(path=path, status=entry["status"], old_sha256=entry.get("old_sha256"),
                          new_sha256=entry.get("new_sha256"), added=entry.get("added") or 0,
                          removed=entry.get("removed") or 0, diff=entry.get("diff") or "",
                          truncated=bool(entry.get("truncated")),
                          env=checked_changes(entry.get("env"), env_secret_keys))
                for path, entry in answer["files"].items()}


class Driver(Protocol):
    """Operations on one tenant host. Mutating calls carry a fence (the upgrade id): the host refuses a fence lower
    than one it has seen (AgentRejected, code "fence_rejected"), so a superseded upgrade cannot write.

    Every method raises AgentUnreachable (nothing was done), AgentAuthFailed, AgentRejected (the host's own status,
    code and message) or DriverError (the local host failed, e.g. an OSError)."""

    target: str  # human-readable: the agent URL or the install dir

    def health(self) -> dict:
        """`{"version", "protocol", "capabilities": [...], "instances": [...]}`: what the host runs and can do."""
        ...

    def diff_files(self, files: dict[str, str], env_secret_keys: tuple[str, ...] = ()) -> dict[str, FileDiff]:
        """Compare proposed contents ({relpath: text}) with the files on the host; reads only.

        .env-like files come with their per-key table; `env_secret_keys` are keys whose values it must withhold
        beyond the masking rule's own. Paths leaving the install dir and oversized contents are refused
        (AgentRejected 400/413)."""
        ...

    def write_files(self, files: dict[str, dict], fence: int) -> dict:
        """Snapshot, then write every file ({relpath: {"content", "expect_sha256"}}) or none.

        Returns `{"snapshot_id", "written", "created"}`. A file whose on-disk hash differs from `expect_sha256`
        (None: it must not exist) fails the whole write with 409, nothing written."""
        ...

    def restore_snapshot(self, snapshot_id: str, fence: int) -> dict:
        """Put a snapshot's files back and remove those it recorded as created: `{"restored", "removed"}`."""
        ...

    def env_keys(self, values_of: tuple[str, ...] = ()) -> dict:
        """`{"keys": [names], "exists": bool, "values": {name: value}}` of the tenant's .env; `values` holds only the
        keys asked for in `values_of` that are not secret (ccp.envfile.secrecy), and is absent from old agents."""
        ...

    def env_patch(self, values: dict[str, str], fence: int, snapshot_id: str | None = None) -> dict:
        """Set `values` in the .env in place, every other line kept: `{"snapshot_id", "changed", "appended"}`.

        With `snapshot_id`, the .env joins that snapshot, so one restore undoes the files and the patch."""
        ...

    def compose(self, action: str, deadline_s: float, on_output=None) -> dict:
        """Run `docker compose <action>` (pull, up, ps, down) within `deadline_s` seconds.

        Returns `{"ok", "exit_code", "signal", "timed_out", "duration_s", "output_tail"}` (+ `services` for ps);
        .env values the output printed are masked. `on_output(text)`, when given, gets the (masked) output as it
        is written, whole lines at a time, in the caller's thread (a remote host needs `output.stream`)."""
        ...

    def run_script(self, name: str, deadline_s: float, on_output=None) -> dict:
        """Run an allow-listed tenant script (`upgrade`, `image-upgrade`) within `deadline_s`; the same answer
        and `on_output` as `compose`."""
        ...

    def run_hook(self, hook: str, content: str, deadline_s: float, fence: int, *, from_tag: str | None = None,
                 to_tag: str | None = None) -> dict:
        """Run a template set's hook (`pre_upgrade`, `post_upgrade`): `content` is its rendered script, run with `sh`
        in the install dir within `deadline_s`. The same answer as `compose` (output masked)."""
        ...

    def create_backup(self, content: str, deadline_s: float, fence: int, *, keep: int, from_tag: str | None = None,
                      to_tag: str | None = None) -> dict:
        """Run the set's backup hook into a new backup folder (`$CCP_BACKUP_DIR`), keeping the newest `keep`.
        The `compose` answer plus `backup_id` and `size_bytes` (null when the hook failed or wrote nothing)."""
        ...

    def restore_backup(self, backup_id: str, content: str, deadline_s: float, fence: int, *,
                       from_tag: str | None = None, to_tag: str | None = None) -> dict:
        """Run the set's restore hook with `$CCP_BACKUP_DIR` at backup `backup_id` (404 when it is gone)."""
        ...

    def compose_wait(self, wait_s: float) -> dict:
        """Look at the containers until they settle or `wait_s` passes (capability `compose.wait`; 0 = one look):
        `{"ok", "settled", "services", "waited_s", "looks", "source"}` (ccp.agent.waiting)."""
        ...

    def image_digests(self) -> dict[str, str]:
        """Image repository -> registry digest of what the tenant's containers run (capability `images.digests`);
        `{}` on the dry-run runtime or for images never pulled from a registry."""
        ...

    def list_backups(self) -> list[dict]:
        """The backups kept on the host, oldest first: `[{"id", "created", "size_bytes", "duration_s",
        "upgrade_id"}]`."""
        ...
