"""The driver protocol: what CCP asks of a tenant host, and the typed errors every driver raises.

Every method returns the JSON-ready dict of the agent protocol (DESIGN.md "Agent protocol"), so the remote and the
local driver are interchangeable and share one test suite.
"""

from __future__ import annotations

from typing import Protocol


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


class Driver(Protocol):
    """Operations on one tenant host. Mutating calls carry a fence (the upgrade id) checked by the host."""

    target: str  # human-readable: the agent URL or the install dir

    def health(self) -> dict: ...

    def diff_files(self, files: dict[str, str]) -> dict: ...

    def write_files(self, files: dict[str, dict], fence: int) -> dict: ...

    def restore_snapshot(self, snapshot_id: str, fence: int) -> dict: ...

    def env_keys(self) -> dict: ...

    def env_patch(self, values: dict[str, str], fence: int, snapshot_id: str | None = None) -> dict: ...

    def compose(self, action: str, deadline_s: float) -> dict: ...

    def run_script(self, name: str, deadline_s: float) -> dict: ...
