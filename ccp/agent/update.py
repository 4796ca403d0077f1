"""Agent self-update (issue #15): CCP pushes the light agent's wheel in a signed request; the agent unpacks it beside
the code it runs, and its launcher (ccp.agent.launcher) restarts it into the new code, keeping the old one until CCP
confirms the new one answers.

Files, under ``<state_dir>/_agent/`` (a name no instance slug can take):

- ``versions/<version>/``  the unpacked wheel of each version CCP sent (pure Python: ``ccp/`` and its dist-info);
- ``current.json``         ``{"version", "path"}``: the code the launcher runs (no file, or path null: the installed
                           package);
- ``pending.json``         an update on its way: ``{"target", "path", "previous", "previous_path", "deadline_s",
                           "deadline" (epoch s, set when the new code starts), "state"}`` with state ``staged`` (the
                           old code accepted it and exits), ``started`` (the launcher started the new code),
                           ``confirmed`` (CCP confirmed the new code; the launcher makes it current);
- ``last_update.json``     how the last update ended: ``{"target", "outcome": succeeded|restored, "reason", "at"}``;
- ``trial.json``           the new code's own checks, run when it starts on trial before it serves (ccp.agent.checks
                           ``trial_findings``): ``{"target", "checks": passed|failed, "failed": [texts],
                           "warnings": [texts], "at"}``. On a failure the new code exits with CHECKS_FAILED_EXIT and
                           the launcher restores the previous code at once, saying which check failed.

The old code writes ``staged`` and exits; only the launcher writes ``started``, ``current.json`` and
``last_update.json``; only the new code writes ``confirmed`` (once its checks passed) and ``trial.json``. Every file
is replaced atomically.

The code run is never older than the installed package (a container's image): an update to an older version is
refused, and the launcher runs the installed package whenever it is not older than the pushed one.

The endpoints exist only when the agent runs under the launcher (``CCP_AGENT_LAUNCHED`` names the state folder):
an agent served any other way (a thread in tests or the demo, ``python -m ccp.agent serve``) cannot restart itself,
so it does not report the ``agent.update`` capability and CCP never asks it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
import zipfile
from pathlib import Path

from ccp import __version__
from ccp.protocol import AGENT_UPDATE_CAPABILITY, AGENT_UPDATE_CHECKS_CAPABILITY

log = logging.getLogger("ccp.agent.update")
LAUNCHED_ENV = "CCP_AGENT_LAUNCHED"  # set by the launcher for its child: the update folder
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MIN_DEADLINE_S, MAX_DEADLINE_S, DEFAULT_DEADLINE_S = 5.0, 900.0, 120.0
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
CHECKS_FAILED_EXIT = 78  # the new code's exit code when its trial checks failed (EX_CONFIG)
MAX_FINDINGS, MAX_FINDING_CHARS = 5, 300
REQUIRED_FILES = ("ccp/__init__.py", "ccp/agent/__init__.py", "ccp/agent/__main__.py", "ccp/agent/cli.py",
                  "ccp/agent/launcher.py")


class UpdateRefused(Exception):
    """The update request is refused; nothing was changed. ``status``/``code`` make the agent's 4xx answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def update_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "_agent"


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable (a torn file never blocks a start)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def version_key(version: str | None) -> tuple[int, ...]:
    """The release numbers a version starts with ("0.10.2rc1+x" -> (0, 10, 2)): enough to tell an older version
    (the light agent has no ``packaging``). Pre-release and local parts are ignored, so they never count as older."""
    found = re.match(r"\d+(?:\.\d+)*", version or "")
    parts = [int(p) for p in found.group(0).split(".")] if found else []
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def older(version: str | None, than: str | None) -> bool:
    """Whether ``version``'s release is older than ``than``'s."""
    return version_key(version) < version_key(than)


def launched_dir() -> Path | None:
    """The update folder when this process runs under the launcher, else None."""
    value = os.environ.get(LAUNCHED_ENV)
    return Path(value) if value else None


def capabilities() -> list[str]:
    """``agent.update`` when the agent can restart itself into new code (it runs under the launcher)."""
    return [AGENT_UPDATE_CAPABILITY, AGENT_UPDATE_CHECKS_CAPABILITY] if launched_dir() else []


def trial_of(folder: Path) -> dict | None:
    """This code's trial checks while it is the update on its way (pending names this version), else None."""
    pending = read_json(folder / "pending.json")
    trial = read_json(folder / "trial.json")
    if pending is None or pending.get("target") != __version__ or trial is None or trial.get("target") != __version__:
        return None
    return trial


def health_fields() -> dict:
    """For /v1/health: ``last_update``, how the last self-update ended (absent before the first), and ``trial``
    while this code is an update on trial: its checks (``passed``) and their warnings."""
    folder = launched_dir()
    if folder is None:
        return {}
    out = {}
    last = read_json(folder / "last_update.json")
    if last:
        out["last_update"] = last
    trial = trial_of(folder)
    if trial:
        out["trial"] = {k: trial.get(k) for k in ("target", "checks", "failed", "warnings")}
    return out


def installed_version(folder: Path) -> str:
    """The installed package's version (a container's image): this code's own, unless it is a pushed version."""
    current = read_json(folder / "current.json") or {}
    return str(current.get("installed") or __version__) if current.get("path") else __version__


def run_trial_checks(config) -> None:
    """When this process is a new version on trial (its launcher started it, not yet confirmed): run its checks
    (ccp.agent.checks ``trial_findings``) before serving and record them in ``trial.json``; when one fails, exit
    with CHECKS_FAILED_EXIT so that the launcher restores the previous code at once. Texts only: no key, no value
    of a tenant's file is in a finding."""
    folder = launched_dir()
    if folder is None:
        return
    pending = read_json(folder / "pending.json")
    if pending is None or pending.get("target") != __version__ or pending.get("state") != "started":
        return
    from ccp.agent.checks import Finding, trial_findings

    started = time.monotonic()
    try:
        findings = trial_findings(config)
    except Exception as exc:  # noqa: BLE001 - a check that breaks is a failed check of this version
        log.exception("the trial checks broke")
        findings = [Finding("fail", f"the checks could not run: {type(exc).__name__}")]

    def texts(level: str) -> list[str]:
        return [f.text[:MAX_FINDING_CHARS] for f in findings if f.level == level][:MAX_FINDINGS]

    failed = texts("fail")
    write_json(folder / "trial.json", {"target": __version__, "checks": "failed" if failed else "passed",
                                       "failed": failed, "warnings": texts("warn"), "at": time.time()})
    if failed:
        log.error("agent %s on trial: its checks failed, exiting so that the previous code is restored: %s",
                  __version__, "; ".join(failed))
        raise SystemExit(CHECKS_FAILED_EXIT)
    log.info("agent %s on trial: its checks passed in %.1f s", __version__, time.monotonic() - started)


def wheel_version(data: bytes) -> str:
    """The Version in a ccp-agent wheel's METADATA (raises UpdateRefused when it is not such a wheel)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
            if meta is None:
                raise UpdateRefused(422, "bad_wheel", "the wheel has no .dist-info/METADATA")
            text = zf.read(meta).decode("utf-8", "replace")
    except (zipfile.BadZipFile, OSError) as exc:
        raise UpdateRefused(422, "bad_wheel", f"the wheel is not a zip archive ({exc})") from None
    found = re.search(r"^Version: (\S+)$", text, re.M)
    if not found:
        raise UpdateRefused(422, "bad_wheel", "the wheel's METADATA names no Version")
    return found.group(1)


def unpack_wheel(data: bytes, version: str, dest: Path) -> None:
    """Check the wheel (only ``ccp/`` and its dist-info, no absolute or ``..`` names, the agent's modules present,
    METADATA naming ``version``) and unpack it into ``dest`` (replaced whole; built beside it, then renamed)."""
    if wheel_version(data) != version:
        raise UpdateRefused(422, "version_mismatch", f"the wheel is not version {version}")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        total = 0
        for info in infos:
            name = info.filename
            parts = name.split("/")
            if name.startswith("/") or "\\" in name or ".." in parts or not (
                    parts[0] == "ccp" or (parts[0].startswith("ccp_agent-") and parts[0].endswith(".dist-info"))):
                raise UpdateRefused(422, "bad_wheel", f"the wheel holds a file outside the agent's package: {name!r}")
            total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise UpdateRefused(422, "bad_wheel", "the wheel unpacks to more than 64 MiB")
        missing = [n for n in REQUIRED_FILES if n not in names]
        if missing:
            raise UpdateRefused(422, "bad_wheel", f"the wheel lacks the agent's modules: {', '.join(missing)}")
        tmp = dest.with_name(f".{dest.name}.unpacking")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, mode=0o755)
        for info in infos:
            if not info.is_dir():
                target = tmp / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def _number(value, name: str, low: float, high: float, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise UpdateRefused(400, "bad_request", f"{name} must be a number of seconds from {low:g} to {high:g}")
    return float(value)


class Updater:
    """The agent's side of ``POST /v1/agent/update`` and ``/confirm`` (one per agent process)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()

    @property
    def pending_path(self) -> Path:
        return self.folder / "pending.json"

    def stage(self, data: dict) -> dict:
        """Check and unpack the wheel, write the ``staged`` marker; the caller answers 202, then exits."""
        version, sha, wheel = data.get("version"), data.get("sha256"), data.get("wheel")
        if not isinstance(version, str) or not VERSION_RE.match(version):
            raise UpdateRefused(400, "bad_request", "version must be a version string (letters, digits, . + ! _ -)")
        if not isinstance(sha, str) or not SHA_RE.match(sha):
            raise UpdateRefused(400, "bad_request", "sha256 must be 64 lowercase hex digits")
        if not isinstance(wheel, str) or not wheel:
            raise UpdateRefused(400, "bad_request", "wheel must be the wheel file in base64")
        deadline_s = _number(data.get("deadline_s"), "deadline_s", MIN_DEADLINE_S, MAX_DEADLINE_S,
                             DEFAULT_DEADLINE_S)
        try:
            raw = base64.b64decode(wheel, validate=True)
        except (binascii.Error, ValueError):
            raise UpdateRefused(400, "bad_request", "wheel is not valid base64") from None
        if hashlib.sha256(raw).hexdigest() != sha:
            raise UpdateRefused(422, "sha256_mismatch", "the wheel's SHA-256 is not the one named: nothing installed")
        if version == __version__:
            raise UpdateRefused(409, "same_version", f"this agent already runs version {version}")
        installed = installed_version(self.folder)
        if older(version, installed):
            raise UpdateRefused(409, "older_than_installed", f"version {version} is older than the installed agent "
                                f"({installed}, e.g. the container's image): it would never run")
        if not self.lock.acquire(blocking=False):
            raise UpdateRefused(409, "update_in_progress", "another update request is being handled")
        try:
            if self.pending_path.exists():
                raise UpdateRefused(409, "update_in_progress", "an update is already on its way on this agent")
            dest = self.folder / "versions" / version
            unpack_wheel(raw, version, dest)
            current = read_json(self.folder / "current.json") or {}
            write_json(self.pending_path, {"target": version, "path": str(dest), "previous": __version__,
                                           "previous_path": current.get("path"), "deadline_s": deadline_s,
                                           "deadline": None, "state": "staged", "at": time.time()})
        finally:
            self.lock.release()
        return {"version": __version__, "target": version, "state": "staged", "deadline_s": deadline_s}

    def confirm(self, data: dict) -> dict:
        """CCP saw this (new) code answer: mark the pending update confirmed (the launcher makes it current)."""
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise UpdateRefused(400, "bad_request", "version must name the version to confirm")
        with self.lock:
            pending = read_json(self.pending_path)
            if version != __version__:
                raise UpdateRefused(409, "not_running", f"this agent runs {__version__}, not {version}")
            if pending is None or pending.get("target") != version:
                last = read_json(self.folder / "last_update.json") or {}
                if last.get("target") == version and last.get("outcome") == "succeeded":
                    return {"version": __version__, "state": "confirmed"}  # a retried confirm
                raise UpdateRefused(409, "nothing_pending", f"no update to {version} waits for a confirmation")
            deadline = pending.get("deadline")
            if pending.get("state") == "started" and deadline and time.time() > float(deadline) - 1:
                raise UpdateRefused(409, "too_late", "the update's deadline has passed: the launcher restores")
            trial = trial_of(self.folder) or {}
            if pending.get("state") == "started" and trial.get("checks") != "passed":
                raise UpdateRefused(409, "checks_not_passed", "this version's checks have not passed: "
                                    + ("; ".join(trial.get("failed") or ()) or "they did not run"))
            if pending.get("state") != "confirmed":
                write_json(self.pending_path, {**pending, "state": "confirmed", "confirmed_at": time.time()})
        return {"version": __version__, "state": "confirmed"}


def exit_soon(delay: float = 0.2) -> None:
    """Stop this agent process cleanly a moment after the answer went out (its launcher starts the new code)."""
    threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM)).start()


class InFlight:
    """Counts the requests being served, so an update never stops the agent in the middle of a tenant's operation:
    the update is refused (409 busy) while one runs, and once it is accepted new requests get 503 until the agent
    has restarted (health and the update endpoints excepted)."""

    QUIET = ("health", "agent_update", "agent_update_confirm")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.restarting = False

    def enter(self) -> bool:
        with self.lock:
            if self.restarting:
                return False
            self.active += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def begin_restart(self) -> int:
        """Mark the agent restarting when nothing is in flight; returns how many requests are (0 = marked)."""
        with self.lock:
            if self.active == 0:
                self.restarting = True
            return self.active


def register(app, error) -> None:
    """Add the update endpoints to the agent's Flask ``app`` when it runs under the launcher."""
    from flask import g, request

    from ccp.bodies import parse_json

    folder = launched_dir()
    if folder is None:
        return
    updater = Updater(folder)
    flight = InFlight()

    @app.before_request
    def count_in():  # runs after the signature check (registered after it)
        if request.endpoint in InFlight.QUIET:
            return None
        if not flight.enter():
            return error(503, "restarting", "the agent is restarting into a new version: try again in a moment")
        g.in_flight = True
        return None

    @app.teardown_request
    def count_out(_exc):
        if g.pop("in_flight", False):
            flight.leave()

    def body() -> dict:
        try:
            data = parse_json(request.get_data() or b"{}")
        except ValueError as exc:
            raise UpdateRefused(400, "bad_request", f"request body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UpdateRefused(400, "bad_request", "request body must be a JSON object")
        return data

    @app.post("/v1/agent/update")
    def agent_update():
        busy = flight.begin_restart()
        if busy:
            return error(409, "busy", f"{busy} operation(s) in flight on this agent: try again when they end")
        try:
            answer = updater.stage(body())
        except UpdateRefused as exc:
            flight.restarting = False
            return error(exc.status, exc.code, str(exc))
        except Exception:
            flight.restarting = False
            raise
        response = app.json.response(answer)
        response.status_code = 202
        response.call_on_close(exit_soon)
        return response

    @app.post("/v1/agent/update/confirm")
    def agent_update_confirm():
        try:
            return updater.confirm(body())
        except UpdateRefused as exc:
            return error(exc.status, exc.code, str(exc))
