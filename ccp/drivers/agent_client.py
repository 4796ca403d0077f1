"""Signed HTTP client for one agent (CCP's RemoteDriver wraps it). Retries only idempotent GETs."""
from __future__ import annotations

import json as jsonlib
import time

import requests

from ccp.protocol.signing import sign_request

GET_RETRIES = 2
STREAM_TYPE = "application/x-ndjson"


class AgentUnreachable(Exception):
    """The agent could not be reached or did not answer in time (the message names its URL)."""


class AgentClient:
    """Talks protocol v1 to the agent at ``base_url`` with key ``key_id``/``key``."""

    def __init__(self, base_url: str, key_id: str, key: bytes, *, connect_timeout: float = 3,
                 read_timeout: float = 30):
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self.key = key if isinstance(key, bytes) else key.encode()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, json=None, timeout: float | None = None) -> tuple[int, dict]:
        """Send a signed request; return (status, body dict). ``timeout`` overrides the read timeout.

        A non-JSON answer becomes ``{"error": {"code": "bad_response", ...}}``. Raises AgentUnreachable on
        connection errors and timeouts (GETs are retried twice first, each with a fresh signature).
        """
        method = method.upper()
        body = b"" if json is None else jsonlib.dumps(json, separators=(",", ":")).encode()
        attempts = 1 + (GET_RETRIES if method == "GET" else 0)
        last_exc: Exception | None = None
        for attempt in range(attempts):
            headers = sign_request(self.key_id, self.key, method, path, body)
            if json is not None:
                headers["Content-Type"] = "application/json"
            try:
                resp = self.session.request(method, self.base_url + path, data=body, headers=headers,
                                            timeout=(self.connect_timeout, timeout or self.read_timeout))
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_exc = exc
                if attempt + 1 < attempts:
                    time.sleep(0.2 * (attempt + 1))
                continue
            try:
                data = resp.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                data = {"error": {"code": "bad_response",
                                  "message": f"agent at {self.base_url} answered HTTP {resp.status_code} without "
                                             "a JSON object"}}
            return resp.status_code, data
        kind = "timed out" if isinstance(last_exc, requests.Timeout) else "is unreachable"
        raise AgentUnreachable(f"agent at {self.base_url} {kind}: {type(last_exc).__name__}") from last_exc

    def stream(self, method: str, path: str, json: dict, on_output, timeout: float | None = None) -> tuple[int, dict]:
        """Send a signed request whose 200 answer is streamed as JSON lines (`{"output": text}` as the agent's
        command writes it, passed to ``on_output``, then one `{"result": {...}}`); return (status, result). Any
        other status is answered like `request`. Never retried (the request runs a command). ``timeout`` is the
        longest silence between two lines.
        """
        method = method.upper()
        body = jsonlib.dumps(json, separators=(",", ":")).encode()
        headers = {**sign_request(self.key_id, self.key, method, path, body), "Content-Type": "application/json"}
        try:
            with self.session.request(method, self.base_url + path, data=body, headers=headers, stream=True,
                                      timeout=(self.connect_timeout, timeout or self.read_timeout)) as resp:
                if resp.status_code != 200 or not resp.headers.get("Content-Type", "").startswith(STREAM_TYPE):
                    try:
                        data = resp.json()
                    except ValueError:
                        data = None
                    if not isinstance(data, dict):
                        data = {"error": {"code": "bad_response", "message": f"agent at {self.base_url} answered "
                                          f"HTTP {resp.status_code} without a JSON object"}}
                    return resp.status_code, data
                for line in resp.iter_lines():
                    if not line:
                        continue
                    try:
                        item = jsonlib.loads(line)
                    except ValueError:
                        continue
                    if isinstance(item, dict) and isinstance(item.get("output"), str):
                        on_output(item["output"])
                    elif isinstance(item, dict) and isinstance(item.get("result"), dict):
                        result = item["result"]
                        return int(result.pop("status", 200)), result
        except (requests.ConnectionError, requests.Timeout) as exc:
            kind = "timed out" if isinstance(exc, requests.Timeout) else "is unreachable"
            raise AgentUnreachable(f"agent at {self.base_url} {kind}: {type(exc).__name__}") from exc
        raise AgentUnreachable(f"agent at {self.base_url} ended its answer before the command's result")

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()
