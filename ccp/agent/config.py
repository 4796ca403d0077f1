"""Agent settings from a TOML file and/or CCP_AGENT_* environment variables (the environment wins).

Example ``agent.toml``::

    listen = "127.0.0.1:8765"
    state_dir = "/var/lib/ccp-agent"
    compose_command = ["docker", "compose"]      # optional; default: autodetect
    [keys]                                       # key id -> secret (>= 32 chars); two at once for rotation
    k2026a = "...."
    [key_files]                                  # or: key id -> file holding the secret (0600; `ccp agent init`)
    k2026b = "/etc/ccp/agent.key"                # relative paths are relative to the config file's folder
    [instances.acme]
    install_dir = "/srv/acme"
    project = "acme"                             # default: the slug
    compose_files = ["docker-compose.yml"]
    [limits]
    max_body_bytes = 8388608
    max_files = 200
    diff_limit_bytes = 262144
    snapshot_keep = 5
    max_deadline_s = 3600

Environment: CCP_AGENT_CONFIG (file path), CCP_AGENT_LISTEN, CCP_AGENT_STATE_DIR, CCP_AGENT_KEYS
("id:secret,id2:secret2"), CCP_AGENT_INSTANCES ("slug=/install/dir,slug2=/dir2"), CCP_AGENT_COMPOSE_COMMAND.
"""
from __future__ import annotations

import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ccp.protocol import MIN_KEY_CHARS  # one rule for the agent and CCP's enrollment

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class AgentConfigError(ValueError):
    """The agent cannot start with these settings; the message names the setting."""


@dataclass
class InstanceConfig:
    """One tenant served by this agent."""

    install_dir: Path
    project: str
    compose_files: tuple[str, ...] = ("docker-compose.yml",)


@dataclass
class AgentConfig:
    """Validated agent settings (see the module docstring for the file format)."""

    keys: dict[str, bytes]
    instances: dict[str, InstanceConfig]
    listen_host: str = "127.0.0.1"
    listen_port: int = 8765
    state_dir: Path = Path("/var/lib/ccp-agent")
    compose_command: list[str] | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_files: int = 200
    diff_limit_bytes: int = 256 * 1024
    snapshot_keep: int = 5
    max_deadline_s: float = 3600.0
    extra: dict = field(default_factory=dict)
    key_files: dict[str, Path] = field(default_factory=dict)  # key id -> the file its secret came from
    source: Path | None = None  # the config file read, if any

    def validate(self) -> AgentConfig:
        """Check every setting; raises AgentConfigError naming the first bad or missing one."""
        if not self.keys:
            raise AgentConfigError("no agent key configured: set [keys] or [key_files] in the config file, "
                                   "or CCP_AGENT_KEYS")
        for key_id, secret in self.keys.items():
            if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", key_id):
                raise AgentConfigError(f"key id {key_id!r} must be 1-64 of A-Z a-z 0-9 _ . -")
            if len(secret) < MIN_KEY_CHARS:
                raise AgentConfigError(f"key {key_id!r} is shorter than {MIN_KEY_CHARS} characters")
        if len(self.keys) > 2:
            raise AgentConfigError("at most two keys may be active at once (current and next, for rotation)")
        for slug, inst in self.instances.items():
            if not _SLUG_RE.match(slug):
                raise AgentConfigError(f"instance slug {slug!r} must be lowercase letters, digits, - or _")
            if not inst.install_dir.is_absolute() or not inst.install_dir.is_dir():
                raise AgentConfigError(f"instances.{slug}.install_dir {inst.install_dir} is not an existing "
                                       "absolute directory")
        if not 0 <= self.listen_port <= 65535:
            raise AgentConfigError("listen port must be 0-65535")
        for name in ("max_body_bytes", "max_files", "diff_limit_bytes", "snapshot_keep"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise AgentConfigError(f"limits.{name} must be a positive integer")
        return self


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise AgentConfigError(f"listen {value!r} must be HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _parse_pairs(value: str, sep: str, setting: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        name, found, rest = item.partition(sep)
        if not found or not name or not rest:
            raise AgentConfigError(f"{setting}: entry {name or item[:20]!r} must look like NAME{sep}VALUE")
        out[name] = rest
    return out


def read_key_file(file: Path, key_id: str) -> bytes:
    """The secret in ``file`` (one line; surrounding whitespace dropped). Raises AgentConfigError naming the file."""
    try:
        return file.read_text().strip().encode()
    except FileNotFoundError:
        raise AgentConfigError(f"key_files.{key_id}: {file} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable text"
        raise AgentConfigError(f"key_files.{key_id}: {file} cannot be read ({reason})") from None


def load_config(path: str | os.PathLike | None = None, env: dict | None = None) -> AgentConfig:
    """Build and validate an AgentConfig from ``path`` (TOML; default CCP_AGENT_CONFIG) and ``env`` overrides.

    Raises AgentConfigError naming the missing or bad setting (e.g. no key configured).
    """
    env = os.environ if env is None else env
    path = path or env.get("CCP_AGENT_CONFIG")
    data: dict = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise AgentConfigError(f"config file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise AgentConfigError(f"config file {path} is not valid TOML: {exc}") from None
    keys = {str(k): str(v).encode() for k, v in (data.get("keys") or {}).items()}
    key_files = {}
    for key_id, file in (data.get("key_files") or {}).items():
        key_files[str(key_id)] = (Path(path).parent / str(file)) if path else Path(str(file))
        if str(key_id) in keys:
            raise AgentConfigError(f"key {key_id!r} is in both [keys] and [key_files]: keep one")
        keys[str(key_id)] = read_key_file(key_files[str(key_id)], str(key_id))
    if env.get("CCP_AGENT_KEYS"):
        keys = {k: v.encode() for k, v in _parse_pairs(env["CCP_AGENT_KEYS"], ":", "CCP_AGENT_KEYS").items()}
        key_files = {}
    instances = {}
    for slug, inst in (data.get("instances") or {}).items():
        if "install_dir" not in inst:
            raise AgentConfigError(f"instances.{slug}.install_dir is missing")
        instances[slug] = InstanceConfig(Path(inst["install_dir"]), str(inst.get("project", slug)),
                                         tuple(inst.get("compose_files", ("docker-compose.yml",))))
    if env.get("CCP_AGENT_INSTANCES"):
        for slug, d in _parse_pairs(env["CCP_AGENT_INSTANCES"], "=", "CCP_AGENT_INSTANCES").items():
            instances[slug] = InstanceConfig(Path(d), slug)
    host, port = _parse_listen(env.get("CCP_AGENT_LISTEN") or data.get("listen") or "127.0.0.1:8765")
    compose = env.get("CCP_AGENT_COMPOSE_COMMAND")
    compose_cmd = shlex.split(compose) if compose else data.get("compose_command")
    limits = data.get("limits") or {}
    cfg = AgentConfig(keys=keys, instances=instances, listen_host=host, listen_port=port,
                      state_dir=Path(env.get("CCP_AGENT_STATE_DIR") or data.get("state_dir") or "/var/lib/ccp-agent"),
                      compose_command=list(compose_cmd) if compose_cmd else None,
                      key_files=key_files, source=Path(path) if path else None,
                      **{k: limits[k] for k in ("max_body_bytes", "max_files", "diff_limit_bytes", "snapshot_keep",
                                                "max_deadline_s") if k in limits})
    return cfg.validate()
