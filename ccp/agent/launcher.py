"""The agent's launcher: ``ccp agent`` / ``ccp-agent`` run this, and it runs the agent as a child process in the
code it chooses -- the installed package, or a version CCP pushed (ccp.agent.update) -- so the agent can update
itself and come back to the old code when the new one fails.

The launcher's own code is always the installed one (a pushed version changes only what the child runs). The
contract between a launcher and any agent version it may start, kept stable across versions: the child is
``python -P -m ccp.agent serve [--config F] [--listen L]`` with ``CCP_AGENT_LAUNCHED`` naming the update folder and
``PYTHONPATH`` starting with the chosen version's folder (absent for the installed code).

What it starts (``choose``), settling the ``pending`` marker first:

- ``confirmed``: CCP confirmed the new code -> it becomes current (``last_update``: succeeded);
- ``staged``: the old code accepted an update and exited -> start the new code on trial until ``deadline``;
- ``started`` with the deadline passed (the launcher itself was restarted meanwhile) -> restore the previous code;
- no marker -> the current code (the installed package once it changed since: an install by hand, or a new
  container image, wins; and never a pushed version older than the installed package).

While the new code is on trial, the launcher restores the previous code when the child exits before it was
confirmed (``the new version exited with code N``; ``its checks failed: ...`` when the new code's own checks failed,
ccp.agent.update.run_trial_checks) or when the deadline passes (the child is stopped), and records why in
``last_update`` (outcome ``restored``), which /v1/health then reports beside the old version.

In a container (ccp/deploy/docker/agent.Dockerfile) the launcher is the image's ``ccp-agent`` and the update folder
lives in the state volume (/var/lib/ccp-agent/_agent), so a confirmed version survives ``docker restart`` and a
re-created container on the same image; a container started from another image runs that image's code. Outside a
trial a child that exits by itself ends the launcher with its exit code: the outer supervisor (systemd's
``Restart=``) starts it again; the launcher does not need one (tests run it as a plain process).
"""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ccp import __version__ as INSTALLED  # the launcher's own code is always the installed package
from ccp.agent.update import CHECKS_FAILED_EXIT, LAUNCHED_ENV, older, read_json, update_dir, write_json

log = logging.getLogger("ccp.agent.launcher")
POLL_S = 0.2
STOP_GRACE_S = 10.0
KEEP_VERSIONS = 3  # version folders kept: the current one, and the newest others (a restored target included)


@dataclass
class Start:
    """The code to start: ``path`` (a versions folder; None = the installed package), and the trial deadline
    (epoch seconds) when it is an update not yet confirmed."""

    version: str | None
    path: str | None
    deadline: float | None = None

    @property
    def on_trial(self) -> bool:
        return self.deadline is not None


def _usable(path: str | None) -> bool:
    return path is None or (Path(path) / "ccp" / "agent" / "cli.py").is_file()


def restore(folder: Path, pending: dict, reason: str) -> None:
    """Give up on the pending update: the previous code stays current; record why."""
    write_json(folder / "last_update.json", {"target": pending.get("target"), "outcome": "restored",
                                             "previous": pending.get("previous"), "reason": reason,
                                             "at": time.time()})
    (folder / "pending.json").unlink(missing_ok=True)
    (folder / "trial.json").unlink(missing_ok=True)
    log.warning("agent update to %s abandoned, previous code restored: %s", pending.get("target"), reason)


def promote(folder: Path, pending: dict) -> None:
    """The confirmed update becomes the current code; old version folders beyond KEEP_VERSIONS are removed."""
    write_json(folder / "current.json", {"version": pending["target"], "path": pending["path"],
                                         "installed": INSTALLED})
    write_json(folder / "last_update.json", {"target": pending["target"], "outcome": "succeeded",
                                             "previous": pending.get("previous"), "reason": "confirmed by CCP",
                                             "at": time.time()})
    (folder / "pending.json").unlink(missing_ok=True)
    (folder / "trial.json").unlink(missing_ok=True)
    log.info("agent update to %s confirmed: it is the current code", pending["target"])
    versions = folder / "versions"
    others = sorted((p for p in versions.iterdir() if p.is_dir() and str(p) != pending["path"]
                     and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in others[KEEP_VERSIONS - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def current(folder: Path) -> Start:
    """The current code: current.json's version folder, or the installed package -- also when the installed package
    changed since that version was confirmed (installed by hand, or a new container image): a by-hand install wins;
    and when the pushed version is older than the installed one (never run older code than the package ships)."""
    data = read_json(folder / "current.json") or {}
    path = data.get("path")
    if path and (data.get("installed") != INSTALLED or older(data.get("version"), INSTALLED)):
        log.warning("the installed agent is now %s (it was %s when %s was confirmed): running the installed package",
                    INSTALLED, data.get("installed"), data.get("version"))
        (folder / "current.json").unlink(missing_ok=True)
        return Start(None, None)
    if path and not _usable(path):
        log.error("current agent code %s is missing: starting the installed package", path)
        return Start(None, None)
    return Start(data.get("version") if path else None, path)


def choose(folder: Path, now: float) -> Start:
    """Settle the pending marker (see the module docstring) and say which code to start now."""
    pending = read_json(folder / "pending.json")
    if pending is not None:
        state = pending.get("state")
        if state == "confirmed":
            promote(folder, pending)
        elif not _usable(pending.get("path")) or not pending.get("target"):
            restore(folder, pending, "the new version's files are missing")
        elif older(pending["target"], INSTALLED):
            restore(folder, pending, f"the installed agent ({INSTALLED}) is newer than {pending['target']}")
        elif state == "staged":
            (folder / "trial.json").unlink(missing_ok=True)  # the checks of an earlier start of this trial
            deadline = now + float(pending.get("deadline_s") or 120)
            write_json(folder / "pending.json", {**pending, "state": "started", "deadline": deadline,
                                                 "started_at": now})
            return Start(pending["target"], pending["path"], deadline)
        elif state == "started" and now < float(pending.get("deadline") or 0):
            return Start(pending["target"], pending["path"], float(pending["deadline"]))
        elif state == "started":
            restore(folder, pending, f"not confirmed by CCP within {pending.get('deadline_s')} s")
        else:
            restore(folder, pending, f"unknown update state {state!r}")
    return current(folder)


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """The child gets SIGTERM if the launcher dies (even by SIGKILL): no agent left holding the port."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def child_command(args: list[str]) -> list[str]:
    return [sys.executable, "-P", "-m", "ccp.agent", "serve", *args]


def child_env(folder: Path, start: Start, base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    env[LAUNCHED_ENV] = str(folder)
    if start.path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (start.path, env.get("PYTHONPATH"))))
    return env


def exit_reason(folder: Path, start: Start, code: int) -> str:
    """Why the new code on trial exited: its failed checks (from trial.json) when that is why, else its exit code."""
    trial = read_json(folder / "trial.json") or {}
    if code == CHECKS_FAILED_EXIT and trial.get("target") == start.version and trial.get("checks") == "failed":
        return "its checks failed: " + "; ".join(trial.get("failed") or ("(none named)",))
    return f"the new version exited with code {code} before CCP confirmed it"


class Launcher:
    """Runs the agent child until stopped (SIGTERM/SIGINT, forwarded to the child)."""

    def __init__(self, state_dir: Path, args: list[str]) -> None:
        self.folder = update_dir(state_dir)
        self.args = args
        self.child: subprocess.Popen | None = None
        self.stopping = False

    def _on_signal(self, signum, _frame) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def _stop_child(self) -> int:
        child = self.child
        if child.poll() is None:
            child.terminate()
            try:
                return child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
        return child.wait()

    def _watch(self, start: Start) -> int | None:
        """Wait for the child; returns its exit code, or None when a trial's deadline passed (child stopped)."""
        while True:
            try:
                return self.child.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping or not start.on_trial:
                continue
            pending = read_json(self.folder / "pending.json")
            if pending is not None and pending.get("state") == "confirmed":
                promote(self.folder, pending)
                start.deadline = None
            elif time.time() >= start.deadline:
                self._stop_child()
                restore(self.folder, pending or {"target": start.version},
                        f"not confirmed by CCP within {(pending or {}).get('deadline_s')} s")
                return None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            start = choose(self.folder, time.time())
            log.info("launcher: starting the agent (%s)%s", start.version or "installed package",
                     " on trial" if start.on_trial else "")
            self.child = subprocess.Popen(child_command(self.args), env=child_env(self.folder, start),
                                          preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads here yet
            code = self._watch(start)
            if self.stopping:
                return self._stop_child() if code is None else code
            if code is None:
                continue  # trial deadline passed: previous code restored
            if start.on_trial:
                pending = read_json(self.folder / "pending.json") or {"target": start.version}
                if pending.get("state") == "confirmed":
                    continue  # confirmed just before it exited: choose() makes it current
                restore(self.folder, pending, exit_reason(self.folder, start, code))
                continue
            pending = read_json(self.folder / "pending.json")
            if pending is not None and pending.get("state") == "staged":
                continue  # the old code accepted an update and exited: start the new one
            log.warning("launcher: the agent exited with code %s", code)
            return code
