"""RemoteDriver: signed HTTP to the tenant's agent (ccp.agent). Timeouts on every call; agent errors typed."""

from __future__ import annotations

from urllib.parse import urlencode

from ccp.drivers.agent_client import AgentClient
from ccp.drivers.agent_client import AgentUnreachable as ClientUnreachable
from ccp.drivers.base import AgentAuthFailed, AgentRejected, AgentUnreachable, DriverError, FileDiff
from ccp.envfile.secrecy import checked_values

# Seconds added to a host-side deadline for the HTTP read timeout, so the agent reports its own timeout first.
DEADLINE_MARGIN_S = 15.0


class RemoteDriver:
    """Drive one tenant through its agent at `base_url` (instance slug = the agent's instance name)."""

    def __init__(self, client: AgentClient, slug: str) -> None:
        self.client = client
        self.slug = slug
        self.target = client.base_url

    @classmethod
    def for_instance(cls, instance, settings) -> "RemoteDriver":
        """Build the driver from the instance's agent URL and (decrypted) key."""
        key = instance.agent_key()
        if not (instance.agent_url and instance.agent_key_id and key):
            raise DriverError(f"{instance.slug} has no agent URL/key configured", status=400, code="no_agent",
                              target=instance.agent_url or "")
        client = AgentClient(instance.agent_url, instance.agent_key_id, key.encode(),
                             connect_timeout=settings.agent_connect_timeout_s,
                             read_timeout=settings.agent_read_timeout_s)
        return cls(client, instance.slug)

    def _request(self, method: str, path: str, body: dict | None = None, timeout: float | None = None) -> dict:
        try:
            status, data = self.client.request(method, path, json=body, timeout=timeout)
        except ClientUnreachable as exc:
            raise AgentUnreachable(str(exc), status=503, code="agent_unreachable", target=self.target) from None
        return self._answer(status, data, path)

    def _answer(self, status: int, data: dict, path: str) -> dict:
        if 200 <= status < 300:
            return data
        error = (data or {}).get("error") or {}
        message = error.get("message") or f"HTTP {status}"
        if status == 401:
            raise AgentAuthFailed(f"agent rejected CCP's signature: {message}", status=status, code="agent_auth",
                                  target=self.target)
        if status == 404 and error.get("code") in (None, "", "not_found_route"):
            raise AgentRejected(f"agent does not know {path} (agent too old?)", status=404, code="unknown_route",
                                target=self.target)
        raise AgentRejected(message, status=status, code=error.get("code") or "agent_error", target=self.target)

    def _inst(self, suffix: str) -> str:
        return f"/v1/instances/{self.slug}/{suffix}"

    def health(self) -> dict:
        return self._request("GET", "/v1/health")

    def compose_wait(self, wait_s: float) -> dict:
        return self._request("POST", self._inst("compose/wait"), {"deadline_s": wait_s}, timeout=wait_s + 30)

    def image_digests(self) -> dict[str, str]:
        return self._request("GET", self._inst("images")).get("image_digests") or {}

    def diff_files(self, files: dict[str, str], env_secret_keys: tuple[str, ...] = ()) -> dict[str, FileDiff]:
        body = {"files": files, "env_secret_keys": sorted(env_secret_keys)} if env_secret_keys else {"files": files}
        return FileDiff.from_answer(self._request("POST", self._inst("files/diff"), body), env_secret_keys)

    def write_files(self, files: dict[str, dict], fence: int) -> dict:
        return self._request("POST", self._inst("files/write"), {"files": files, "fence": fence})

    def restore_snapshot(self, snapshot_id: str, fence: int) -> dict:
        return self._request("POST", self._inst(f"snapshots/{snapshot_id}/restore"), {"fence": fence})

    def env_keys(self, values_of: tuple[str, ...] = ()) -> dict:
        query = "?" + urlencode([("value", name) for name in values_of]) if values_of else ""
        answer = self._request("GET", self._inst("env/keys") + query)
        answer["values"] = checked_values(answer.get("values"), values_of)
        return answer

    def env_patch(self, values: dict[str, str], fence: int, snapshot_id: str | None = None) -> dict:
        body = {"set": values, "fence": fence}
        if snapshot_id:
            body["snapshot_id"] = snapshot_id
        return self._request("POST", self._inst("env/patch"), body)

    def compose(self, action: str, deadline_s: float, on_output=None) -> dict:
        return self._run(f"compose/{action}", deadline_s, on_output)

    def run_script(self, name: str, deadline_s: float, on_output=None) -> dict:
        return self._run(f"scripts/{name}", deadline_s, on_output)

    def _run(self, suffix: str, deadline_s: float, on_output) -> dict:
        """A command on the host; with `on_output` its output is streamed as it is written (capability
        output.stream: the caller checks it), else it arrives with the answer."""
        if on_output is None:
            return self._request("POST", self._inst(suffix), {"deadline_s": deadline_s},
                                 timeout=deadline_s + DEADLINE_MARGIN_S)
        path = self._inst(suffix)
        try:
            status, data = self.client.stream("POST", path, {"deadline_s": deadline_s, "stream": True}, on_output,
                                              timeout=deadline_s + DEADLINE_MARGIN_S)
        except ClientUnreachable as exc:
            raise AgentUnreachable(str(exc), status=503, code="agent_unreachable", target=self.target) from None
        return self._answer(status, data, path)

    def run_hook(self, hook: str, content: str, deadline_s: float, fence: int, *, from_tag: str | None = None,
                 to_tag: str | None = None) -> dict:
        body = {"content": content, "deadline_s": deadline_s, "fence": fence, "from_tag": from_tag, "to_tag": to_tag}
        return self._request("POST", self._inst(f"hooks/{hook}/run"), body, timeout=deadline_s + DEADLINE_MARGIN_S)

    def create_backup(self, content: str, deadline_s: float, fence: int, *, keep: int, from_tag: str | None = None,
                      to_tag: str | None = None) -> dict:
        body = {"content": content, "deadline_s": deadline_s, "fence": fence, "keep": keep, "from_tag": from_tag,
                "to_tag": to_tag}
        return self._request("POST", self._inst("backups"), body, timeout=deadline_s + DEADLINE_MARGIN_S)

    def restore_backup(self, backup_id: str, content: str, deadline_s: float, fence: int, *,
                       from_tag: str | None = None, to_tag: str | None = None) -> dict:
        body = {"content": content, "deadline_s": deadline_s, "fence": fence, "from_tag": from_tag, "to_tag": to_tag}
        return self._request("POST", self._inst(f"backups/{backup_id}/restore"), body,
                             timeout=deadline_s + DEADLINE_MARGIN_S)

    def list_backups(self) -> list[dict]:
        return self._request("GET", self._inst("backups"))["backups"]
