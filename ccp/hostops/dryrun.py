"""The dry-run container runtime: a labelled stand-in for `docker compose` on hosts without Docker.

`ccp demo` uses it when no Docker engine is available, and tests use it at the process boundary. It never starts
a container: every line it prints says DRY RUN, and the agent advertises the capability `runtime.dry-run` so the UI
can say plainly that apply cannot change containers there. It reads the compose file and .env like compose would
(only what it needs) and keeps the "running" services in `.dry-run-runtime.json` in the install dir.

To let operators and tests see failure handling, the tag in IMAGE_TAG steers it:
  broken    -> services whose image uses IMAGE_TAG "exit" at once (exit code 1)
  unhealthy -> they "run" but report health "unhealthy"
  nopull    -> `pull` fails (manifest unknown)
DRY_RUN_COMPOSE_SLEEP=<seconds> makes pull/up take that long.

Usage (argv as compose gets it from hostops): python -m ccp.hostops.dryrun -p PROJECT -f FILE ... ACTION [args]
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import yaml

from ccp.envfile.dotenv import EnvParseError, parse_env

STATE = Path(".dry-run-runtime.json")
LABEL = "DRY RUN (no Docker engine on this host; no container was changed)"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def dry_run_command() -> list[str]:
    """The argv prefix hostops uses to run this module instead of docker compose."""
    return [sys.executable, "-m", "ccp.hostops.dryrun"]


def is_dry_run(command: list[str] | None) -> bool:
    """True when a compose command is the dry-run runtime."""
    return bool(command) and "ccp.hostops.dryrun" in command


def _env() -> dict[str, str]:
    try:
        return parse_env(Path(".env").read_text()) if Path(".env").exists() else {}
    except (EnvParseError, OSError):
        return {}


def _services(compose_file: str, project: str) -> dict[str, dict]:
    doc = yaml.safe_load(Path(compose_file).read_text()) or {}
    env = _env()
    tag = env.get("IMAGE_TAG", "latest")
    out = {}
    for name, svc in (doc.get("services") or {}).items():
        if svc.get("profiles"):
            continue
        raw = str(svc.get("image", ""))
        image = _REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), raw)
        state, health, code = "running", ("healthy" if svc.get("healthcheck") else ""), 0
        if "IMAGE_TAG" in raw and tag == "broken":
            state, health, code = "exited", "", 1
        elif "IMAGE_TAG" in raw and tag == "unhealthy":
            health = "unhealthy"
        out[name] = {"Service": name, "Name": f"{project}-{name}-1", "Image": image, "State": state,
                     "Health": health, "ExitCode": code}
    return out


def main(argv: list[str]) -> int:
    """Run one compose-like action; returns the exit code."""
    project, files = "default", []
    while len(argv) >= 2 and argv[0] in ("-p", "-f"):
        if argv[0] == "-p":
            project = argv[1]
        else:
            files.append(argv[1])
        argv = argv[2:]
    action = argv[0] if argv else ""
    delay = float(os.environ.get("DRY_RUN_COMPOSE_SLEEP", "0") or 0)
    compose_file = files[0] if files else "docker-compose.yml"
    if action == "pull":
        time.sleep(delay)
        if _env().get("IMAGE_TAG") == "nopull":
            print(f"{LABEL}: simulated pull failure: manifest unknown", file=sys.stderr)
            return 1
        for name, svc in _services(compose_file, project).items():
            print(f"{LABEL}: {name} would pull {svc['Image']}")
    elif action == "up":
        time.sleep(delay)
        state = _services(compose_file, project)
        STATE.write_text(json.dumps(state))
        for name, svc in state.items():
            print(f"{LABEL}: {name} recorded as {svc['State']} ({svc['Image']})")
    elif action == "ps":
        state = json.loads(STATE.read_text()) if STATE.exists() else {}
        for row in state.values():
            print(json.dumps(row))
    elif action == "down":
        STATE.unlink(missing_ok=True)
        print(f"{LABEL}: stack recorded as stopped")
    else:
        print(f"{LABEL}: unsupported action {action!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
