#!/usr/bin/env python3
"""A stand-in for `docker compose` at the process boundary, for tests that run without a Docker engine.

It reads the project's compose file and .env like compose would (only what it needs), keeps the "running"
services in .fake-runtime.json in the install dir, and reacts to IMAGE_TAG:
  broken    -> containers of images using IMAGE_TAG exit at once (exit code 1)
  unhealthy -> they run but their health check fails
  nopull    -> `pull` fails (manifest unknown)
FAKE_COMPOSE_SLEEP=<s> makes pull/up take that long (to kill a worker mid-step).
The real thing is exercised by the e2e tier against a real Docker engine.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

import yaml

STATE = Path(".fake-runtime.json")


def env_values() -> dict:
    values = {}
    if Path(".env").exists():
        for line in Path(".env").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                values[key.strip()] = value.strip().strip("'\"")
    return values


def interpolate(text: str, env: dict) -> str:
    def sub(m):
        name, default = m.group(1), m.group(3) or ""
        return env.get(name) or default
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}", sub, text)


def services(compose_file: str) -> dict:
    doc = yaml.safe_load(Path(compose_file).read_text())
    env = env_values()
    tag = env.get("IMAGE_TAG", "latest")
    out = {}
    for name, svc in (doc.get("services") or {}).items():
        if svc.get("profiles"):
            continue
        raw = str(svc.get("image", ""))
        uses_tag = "IMAGE_TAG" in raw
        image = interpolate(raw, env)
        state, health, code = "running", ("healthy" if svc.get("healthcheck") else ""), 0
        if uses_tag and tag == "broken":
            state, health, code = "exited", "", 1
        elif uses_tag and tag == "unhealthy":
            health = "unhealthy"
        out[name] = {"Service": name, "Name": f"{project}-{name}-1", "Image": image, "State": state,
                     "Health": health, "ExitCode": code}
    return out


args = sys.argv[1:]
project, files = "default", []
while args and args[0] in ("-p", "-f"):
    flag, value, args = args[0], args[1], args[2:]
    if flag == "-p":
        project = value
    else:
        files.append(value)
action = args[0] if args else ""
delay = float(os.environ.get("FAKE_COMPOSE_SLEEP", "0"))
if action == "pull":
    time.sleep(delay)
    if env_values().get("IMAGE_TAG") == "nopull":
        print("Error response from daemon: manifest unknown", file=sys.stderr)
        sys.exit(1)
    for name in services(files[0]):
        print(f" {name} Pulled")
elif action == "up":
    time.sleep(delay)
    state = services(files[0])
    STATE.write_text(json.dumps(state))
    for name in state:
        print(f" Container {project}-{name}-1 Started")
elif action == "ps":
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    for row in state.values():
        print(json.dumps(row))
elif action == "down":
    STATE.unlink(missing_ok=True)
else:
    print(f"fake compose: unsupported {action!r}", file=sys.stderr)
    sys.exit(2)
