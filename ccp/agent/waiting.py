"""Waiting on the host for a tenant's containers to settle, so CCP's verify hears about health as soon as Docker
knows it (issue #17), instead of polling `docker compose ps` (~0.25 s a call) through the agent with a back-off.

`wait_for_services` looks every WAIT_POLL_S at the compose project's containers through the engine API (a few
milliseconds a look: one GET over the Docker socket) and answers as soon as they are settled: every one running and
healthy where it has a health check, or any one exited, dead, restarting or unhealthy (verify then says which). It
answers at its deadline otherwise, with what it saw last, so CCP can say what it waits for. Without a usable socket
(a TCP DOCKER_HOST, no permission) and on the dry-run runtime it looks with `compose ps` instead, as verify did.

The services have the shape of `ccp.hostops.compose.parse_ps`: name, container, image, state, health, exit_code.
"""
from __future__ import annotations

import json
import re
import time
import urllib.parse

from ccp.agent.runtime import PROJECT_LABEL, Answer, docker_api

WAIT_POLL_S = 0.05  # an engine API look costs a few ms: verify notices health within ~50 ms of Docker
PS_POLL_S = 0.1  # between `compose ps` runs when the engine cannot be asked directly
BAD_STATES = ("exited", "dead", "removing", "restarting")  # restarting = it exited; a crash loop
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT = re.compile(r"^Exited \((-?\d+)\)")


def engine_services(project: str, timeout: float = 3.0) -> list[dict] | Answer:
    """The project's containers (running or not, `compose run` one-offs left out) as `compose ps --all` lists
    them, read from the engine API; an Answer saying why when the engine cannot be asked."""
    query = urllib.parse.urlencode({"all": "1", "filters": json.dumps({"label": [f"{PROJECT_LABEL}={project}"]})})
    data = docker_api(f"/containers/json?{query}", timeout)
    if isinstance(data, Answer):
        return data
    services = []
    for box in data if isinstance(data, list) else ():
        labels = (box.get("Labels") or {}) if isinstance(box, dict) else {}
        if not isinstance(box, dict) or labels.get(ONEOFF_LABEL) == "True":
            continue
        status = str(box.get("Status") or "")
        health = _HEALTH.search(status)
        exit_code = _EXIT.match(status)
        names = box.get("Names") or [""]
        services.append({
            "name": labels.get(SERVICE_LABEL) or str(names[0]).lstrip("/"), "container": str(names[0]).lstrip("/"),
            "image": box.get("Image"), "state": str(box.get("State") or "").lower(),
            "health": ("starting" if health.group(1) == "health: starting" else health.group(1)) if health else "",
            "exit_code": int(exit_code.group(1)) if exit_code else None})
    return sorted(services, key=lambda s: (s["name"], s["container"]))


def settled(services: list[dict]) -> bool:
    """True when there is nothing more to wait for: every container running and healthy (or without a health
    check), or any one in a bad state (exited, dead, restarting, unhealthy)."""
    if not services:
        return False
    if any(s.get("state") in BAD_STATES or s.get("health") == "unhealthy" for s in services):
        return True
    return all(s.get("state") == "running" and s.get("health") in ("", "healthy") for s in services)


def wait_for_services(project: str, wait_s: float, compose_ps, *, use_engine: bool = True) -> dict:
    """Look until the containers are settled or `wait_s` has passed (0: one look); `compose_ps()` is the host's
    `compose ps` answer, used when the engine cannot be asked (or `use_engine` is False: the dry-run runtime).

    Answers `{"ok", "settled", "services", "waited_s", "looks", "source": "engine"|"compose"}`; `ok` is False
    (with `output_tail`) only when `compose ps` itself failed."""
    start = time.monotonic()
    end = start + max(0.0, wait_s)
    looks = 0
    engine = use_engine
    while True:
        looks += 1
        result: dict = {"ok": True}
        services = engine_services(project) if engine else None
        if isinstance(services, Answer) or services is None:
            engine = False
            result = compose_ps()
            services = result.get("services") or []
        done = settled(services) or not result.get("ok", True)
        if done or time.monotonic() >= end:
            return {"ok": bool(result.get("ok", True)), "settled": done, "services": services,
                    "waited_s": round(time.monotonic() - start, 3), "looks": looks,
                    "source": "engine" if engine else "compose",
                    **({"output_tail": result.get("output_tail")} if not result.get("ok", True) else {})}
        time.sleep(min(WAIT_POLL_S if engine else PS_POLL_S, max(0.0, end - time.monotonic())))
