"""LocalDriver: the tenant lives on the CCP host; hostops run in-process (same code the agent runs)."""

from __future__ import annotations

from pathlib import Path

from ccp import __version__
from ccp.agent.runtime import Answer, running_image_digests
from ccp.agent.waiting import wait_for_services
from ccp.protocol import PROTOCOL_VERSION, host_capabilities
from ccp.drivers.base import AgentRejected, DriverError, FileDiff
from ccp.hostops.dryrun import is_dry_run
from ccp.hostops.errors import HostOpsError
from ccp.hostops.tenant import TenantHost


class LocalDriver:
    """Drive a tenant install dir on this host through ccp.hostops.TenantHost."""

    def __init__(self, host: TenantHost) -> None:
        self.host = host
        self.target = f"local:{host.install_dir}"

    @classmethod
    def for_instance(cls, instance, settings) -> "LocalDriver":
        """Build the driver for a local instance; raises DriverError when its install dir is unusable."""
        try:
            host = TenantHost(Path(instance.install_dir), instance.compose_project,
                              compose_command=settings.local_compose_command or None)
        except HostOpsError as exc:
            raise AgentRejected(exc.message, status=exc.status, code=exc.code, target=instance.install_dir) from None
        return cls(host)

    def _call(self, method, *args, **kwargs) -> dict:
        try:
            return method(*args, **kwargs)
        except HostOpsError as exc:
            raise AgentRejected(exc.message, status=exc.status, code=exc.code, target=self.target) from None
        except OSError as exc:
            raise DriverError(f"{type(exc).__name__}: {exc.strerror or exc}", target=self.target) from None

    def health(self) -> dict:
        caps = host_capabilities(is_dry_run(self.host.compose_spec.command))
        return {"version": __version__, "protocol": PROTOCOL_VERSION, "capabilities": caps,
                "instances": [self.host.project]}

    def compose_wait(self, wait_s: float) -> dict:
        ps_deadline = max(10.0, min(60.0, wait_s))
        return self._call(wait_for_services, self.host.project, wait_s,
                          lambda: self.host.compose("ps", ps_deadline),
                          use_engine=not is_dry_run(self.host.compose_spec.command))

    def image_digests(self) -> dict[str, str]:
        if is_dry_run(self.host.compose_spec.command):
            return {}
        found = running_image_digests(self.host.project)
        if isinstance(found, Answer):
            raise DriverError(f"cannot read the running images' digests: {found.text}", status=503,
                              code="docker_unavailable", target=self.target)
        return found

    def diff_files(self, files: dict[str, str], env_secret_keys: tuple[str, ...] = ()) -> dict[str, FileDiff]:
        return FileDiff.from_answer(self._call(self.host.diff_files, files, sorted(env_secret_keys)), env_secret_keys)

    def write_files(self, files: dict[str, dict], fence: int) -> dict:
        return self._call(self.host.write_files, files, fence)

    def restore_snapshot(self, snapshot_id: str, fence: int) -> dict:
        return self._call(self.host.restore_snapshot, snapshot_id, fence)

    def env_keys(self, values_of: tuple[str, ...] = ()) -> dict:
        return self._call(self.host.env_keys, list(values_of))

    def env_patch(self, values: dict[str, str], fence: int, snapshot_id: str | None = None) -> dict:
        return self._call(self.host.env_patch, values, fence, snapshot_id)

    def compose(self, action: str, deadline_s: float, on_output=None) -> dict:
        return self._call(self.host.compose, action, deadline_s, on_output)

    def run_script(self, name: str, deadline_s: float, on_output=None) -> dict:
        return self._call(self.host.run_script, name, deadline_s, on_output)

    def run_hook(self, hook: str, content: str, deadline_s: float, fence: int, *, from_tag: str | None = None,
                 to_tag: str | None = None) -> dict:
        return self._call(self.host.run_hook, hook, content, deadline_s, fence, from_tag, to_tag)

    def create_backup(self, content: str, deadline_s: float, fence: int, *, keep: int, from_tag: str | None = None,
                      to_tag: str | None = None) -> dict:
        return self._call(self.host.create_backup, content, deadline_s, fence, keep, from_tag, to_tag)

    def restore_backup(self, backup_id: str, content: str, deadline_s: float, fence: int, *,
                       from_tag: str | None = None, to_tag: str | None = None) -> dict:
        return self._call(self.host.restore_backup, backup_id, content, deadline_s, fence, from_tag, to_tag)

    def list_backups(self) -> list[dict]:
        return self._call(self.host.list_backups)["backups"]
