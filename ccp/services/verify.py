"""Verification after compose up: every service running (and healthy where it has a healthcheck), then every
health URL of the instance answering 2xx/3xx continuously for the monitor window.

Containers: a host with `compose.wait` (every agent of this version, and the local driver) waits on the host itself
and answers as soon as the containers settle (ccp.agent.waiting: it looks at the engine every 50 ms), in slices of
WAIT_SLICE_S so each answer can be shown as progress; so a healthy release is noticed within ~0.05 s of Docker
marking it healthy, with one agent round trip. An older agent is polled with `compose ps`, backing off from 0.1 s to
1 s. URLs are polled the same back-off way; while waiting for them the containers are re-checked, so a service that
dies after the first look fails the step at once instead of at the deadline.
"""

from __future__ import annotations

import time

import requests

from ccp.protocol import WAIT_CAPABILITY

POLL_FIRST_S = 0.1
POLL_MAX_S = 1.0
BAD_STATES = ("exited", "dead", "removing", "restarting")  # restarting = it exited; a crash loop
WAIT_SLICE_S = 5.0  # the longest one compose/wait call waits before CCP hears (and shows) what is pending


class VerifyFailed(Exception):
    """The tenant did not come up healthy; the message says which service or URL and why."""


def verify_tenant(driver, instance, settings, progress=None) -> str:
    """Wait (up to the step deadline) for services and health URLs, then watch the URLs for the monitor window
    (the instance's own `monitor_window_s` when set, else CCP_MONITOR_WINDOW_S).

    Returns a short report. Raises VerifyFailed naming the failing service or URL. `progress(line)`, when given, is
    called with each observation as it is made (what it waits for, each line of the report), so a caller can show
    the step as it goes; it may be called with the same line again.
    """
    say = progress or (lambda line: None)
    deadline = time.monotonic() + settings.step_deadline_s
    ps_deadline = min(60.0, settings.step_deadline_s)
    waits = WAIT_CAPABILITY in (getattr(instance, "agent_capabilities", None) or ())
    if waits:
        def look(wait_s: float) -> dict:
            return driver.compose_wait(wait_s)
    else:
        def look(wait_s: float) -> dict:
            return driver.compose("ps", ps_deadline)
    report = [_wait_for_services(look, deadline, say, waits=waits)]
    say(report[0])
    urls = list(instance.health_urls or [])
    if urls:
        window = instance.monitor_window_s if instance.monitor_window_s is not None else settings.monitor_window_s
        report.append(_watch_urls(urls, deadline, window, settings.agent_connect_timeout_s,
                                  recheck=lambda: _services_problem(look(0)), say=say))
        say(report[-1])
    return "\n".join(report)


def _backoff():
    delay = POLL_FIRST_S
    while True:
        yield delay
        delay = min(POLL_MAX_S, delay * 2)


def _services_problem(result: dict) -> tuple[str | None, list[dict]]:
    """(None, services) when every service of a `compose ps` / `compose/wait` answer runs (healthy where checked);
    else a description of what is pending.

    Raises VerifyFailed at once for a service that exited, died, crash-loops or is unhealthy.
    """
    services = result.get("services") or []
    if not result.get("ok"):
        return f"docker compose ps failed: {(result.get('output_tail') or '')[-300:]}", services
    if not services:
        return "no services are running", services
    for svc in services:
        state, health = (svc.get("state") or "").lower(), (svc.get("health") or "").lower()
        if state in BAD_STATES or health == "unhealthy":
            raise VerifyFailed(f"service {svc.get('name')} is {health or state}"
                               + (f" (exit code {svc['exit_code']})" if svc.get("exit_code") else ""))
        if state != "running" or health not in ("", "healthy"):
            return f"service {svc.get('name')} is {state}{'/' + health if health else ''}", services
    return None, services


def _wait_for_services(look, deadline: float, say, *, waits: bool) -> str:
    """`look(wait_s)` answers the services: the host waits up to wait_s for them to settle when it `waits`, else it
    is one `compose ps` and CCP sleeps between looks (backing off)."""
    for delay in _backoff():
        wait_s = min(WAIT_SLICE_S, max(0.0, deadline - time.monotonic())) if waits else 0.0
        problem, services = _services_problem(look(wait_s))
        if problem is None:
            return "services: " + ", ".join(f"{s.get('name')} {s.get('health') or s.get('state')}" for s in services)
        say(f"waiting: {problem}")
        if time.monotonic() >= deadline:
            raise VerifyFailed(f"{problem} at the deadline")
        if not waits:
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - _backoff never ends


def _watch_urls(urls: list[str], deadline: float, window_s: float, timeout_s: float, recheck, say) -> str:
    pending = list(urls)
    for delay in _backoff():  # first, every URL must come up (services may still be warming up)
        problems = {url: problem for url in pending if (problem := _probe(url, timeout_s)) is not None}
        pending = list(problems)
        if not pending:
            break
        say(f"waiting: health URL {pending[0]} {problems[pending[0]]}"
            + (f" (and {len(pending) - 1} more)" if len(pending) > 1 else ""))
        recheck()  # raises VerifyFailed when a container died meanwhile
        if time.monotonic() >= deadline:  # the problem seen, not a new probe's (it may have come up meanwhile)
            raise VerifyFailed(f"health URL {pending[0]} {problems[pending[0]]} at the deadline")
        time.sleep(delay)
    end = time.monotonic() + window_s
    say(f"health URLs answer; watching them for the monitor window of {window_s:g} s")
    checks = 0
    while True:  # then every URL must keep answering for the whole monitor window
        for url in urls:
            problem = _probe(url, timeout_s)
            if problem is not None:
                raise VerifyFailed(f"health URL {url} {problem} during the monitor window")
        checks += 1
        if time.monotonic() >= end:
            return f"health URLs ok ({len(urls)} URL(s), {checks} round(s) over {window_s:g}s)"
        time.sleep(min(POLL_MAX_S, max(0.0, end - time.monotonic())))


def _probe(url: str, timeout_s: float) -> str | None:
    """None when the URL answers 2xx/3xx, else a short description of the problem."""
    try:
        resp = requests.get(url, timeout=(timeout_s, 10), allow_redirects=False)
    except requests.RequestException as exc:
        return f"unreachable ({type(exc).__name__})"
    if 200 <= resp.status_code < 400:
        return None
    return f"answered HTTP {resp.status_code}"
