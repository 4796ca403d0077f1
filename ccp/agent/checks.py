"""`ccp agent check`: test an agent config on this host and say in plain words what is wrong.

Each finding is ok, warn or fail; any fail makes the command exit 1. Nothing is changed: the checks read files,
ask Docker and compose for their versions, try to bind the listen address and read the clock.
"""
from __future__ import annotations

import email.utils
import errno
import os
import socket
import stat
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ccp.agent.config import AgentConfig, AgentConfigError, load_config
from ccp.agent.runtime import compose_projects, compose_version, dir_entries, docker_version, run_probe
from ccp.hostops.dryrun import is_dry_run

MAX_SKEW_S = 60  # the agent refuses requests signed further away than this (ccp.protocol.signing)


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``level`` is "ok", "warn" or "fail"; ``text`` says what and what to do."""

    level: str
    text: str


def check_agent(config_path: str | None, env: dict, *, ccp_url: str | None = None) -> list[Finding]:
    """Every check of the config at ``config_path`` (and CCP_AGENT_* in ``env``), in reading order."""
    try:
        config = load_config(config_path, env)
    except AgentConfigError as exc:
        return [Finding("fail", f"the config cannot be used: {exc}")]
    found = [Finding("ok", f"config {config.source or '(environment only)'} is valid: "
                           f"{len(config.instances)} instance(s), key(s) {', '.join(sorted(config.keys))}")]
    found += _key_files(config)
    found += _state_dir(config.state_dir)
    found += _instances(config)
    found += _runtime(config)
    found += _listen(config)
    found += _clock(ccp_url)
    return found


def trial_findings(config: AgentConfig) -> list[Finding]:
    """The checks a new agent version runs on trial, before it serves (ccp.agent.update.run_trial_checks): can this
    version work on this host -- its state dir, each tenant's install dir (and its compose project), compose and
    the Docker engine. The key files' modes, the listen port (the server's bind tests it) and the clock are left to
    ``ccp agent check``: they do not change with a version, so they never stop an update."""
    return _state_dir(config.state_dir) + _instances(config) + _runtime(config)


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))[2:].zfill(4)


def _key_files(config: AgentConfig) -> list[Finding]:
    out = []
    if config.source and not config.key_files and config.keys and config.source.stat().st_mode & 0o077:
        out.append(Finding("fail", f"{config.source} holds the key itself and others may read it (mode "
                                   f"{_mode(config.source)}): chmod 600 {config.source}"))
    for key_id, path in sorted(config.key_files.items()):
        st = path.stat()
        if st.st_mode & 0o077:
            out.append(Finding("fail", f"key file {path} ({key_id}) may be read by others (mode {_mode(path)}): "
                                       f"chmod 600 {path}"))
        elif st.st_uid != os.geteuid():
            out.append(Finding("warn", f"key file {path} belongs to uid {st.st_uid}, not to this user "
                                       f"({os.geteuid()}): run the agent as its owner"))
        else:
            out.append(Finding("ok", f"key file {path} is readable by its owner only"))
    return out


def _state_dir(state_dir: Path) -> list[Finding]:
    if state_dir.is_dir():
        if os.access(state_dir, os.W_OK | os.X_OK):
            return [Finding("ok", f"state dir {state_dir} is writable")]
        return [Finding("fail", f"state dir {state_dir} is not writable by this user (mode {_mode(state_dir)}): "
                                "run the agent as its owner or fix its owner")]
    parent = next((p for p in state_dir.parents if p.exists()), Path("/"))
    if os.access(parent, os.W_OK | os.X_OK):
        return [Finding("ok", f"state dir {state_dir} does not exist yet; the agent creates it (0700)")]
    return [Finding("fail", f"state dir {state_dir} does not exist and {parent} is not writable by this user: "
                            f"create it (mkdir -m 700 {state_dir}) and give it to the agent's user")]


def _instances(config: AgentConfig) -> list[Finding]:
    out = []
    containers = compose_projects() if not is_dry_run(config.compose_command) else {}
    for slug, inst in sorted(config.instances.items()):
        where = f"{slug}: {inst.install_dir}"
        if not os.access(inst.install_dir, os.R_OK | os.W_OK | os.X_OK):
            out.append(Finding("fail", f"{where} is not readable and writable by this user (mode "
                                       f"{_mode(inst.install_dir)}): the agent writes the tenant's files there"))
            continue
        entries = dir_entries(inst.install_dir)
        missing = [f for f in inst.compose_files if not (inst.install_dir / f).is_file()]
        if not entries["count"]:
            out.append(Finding("ok", f"{where} is empty: fine for a tenant CCP provisions (it writes the files)"))
        elif missing:
            out.append(Finding("fail", f"{where} holds files but not {', '.join(missing)} (compose_files): name "
                                       "the tenant's compose file in compose_files"))
        else:
            out.append(Finding("ok", f"{where} holds {entries['count']} entries, {', '.join(inst.compose_files)} "
                                     "among them"))
        if isinstance(containers, dict):
            projects = containers.get(os.path.normpath(str(inst.install_dir.resolve())), set())
            other = sorted(projects - {inst.project})
            if other:
                out.append(Finding("fail", f"{slug}: containers started from {inst.install_dir} belong to compose "
                                           f"project {', '.join(other)}, but project = {inst.project!r}: compose "
                                           "would start a second copy of the tenant (docs/agent.md); set project "
                                           "to the running one, and the same on CCP"))
            elif projects:
                out.append(Finding("ok", f"{slug}: its running containers belong to project {inst.project!r}"))
    return out


def _runtime(config: AgentConfig) -> list[Finding]:
    compose = compose_version(config.compose_command)
    command = " ".join(config.compose_command) if config.compose_command else "autodetected compose"
    out = [Finding("ok", f"compose answers ({command}): version {compose.text}") if compose.ok else
           Finding("fail", f"compose cannot run ({command}): {compose.text}")]
    if is_dry_run(config.compose_command):
        return out + [Finding("warn", "compose_command is the dry-run runtime: no container is ever changed")]
    docker = docker_version()
    if docker.ok:
        out.append(Finding("ok", f"the Docker engine answers: version {docker.text}"))
    else:
        sock = Path("/var/run/docker.sock")
        hint = "" if sock.exists() or os.environ.get("DOCKER_HOST") else f" ({sock} does not exist)"
        out.append(Finding("fail", f"Docker does not answer: {docker.text}{hint}"))
    return out


def _listen(config: AgentConfig) -> list[Finding]:
    family = socket.AF_INET6 if ":" in config.listen_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((config.listen_host, config.listen_port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return [Finding("warn", f"{config.listen_host}:{config.listen_port} is in use: the agent already "
                                        "runs, or another program holds the port")]
            return [Finding("fail", f"cannot listen on {config.listen_host}:{config.listen_port}: "
                                    f"{exc.strerror or exc}")]
    return [Finding("ok", f"{config.listen_host}:{config.listen_port} is free to listen on")]


def _clock(ccp_url: str | None) -> list[Finding]:
    out = []
    synced = run_probe(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if synced.ok and synced.text == "yes":
        out.append(Finding("ok", "the clock is synchronised by NTP"))
    elif synced.ok:
        out.append(Finding("warn", f"the clock is not synchronised by NTP: signed requests are refused when CCP's "
                                   f"and this host's clocks differ by more than {MAX_SKEW_S} s"))
    else:
        out.append(Finding("warn", "cannot tell whether NTP keeps the clock right (timedatectl does not answer): "
                                   "keep it synchronised, or pass --ccp-url to compare it with CCP's clock"))
    if ccp_url:
        out.append(_skew(ccp_url))
    return out


def _skew(ccp_url: str) -> Finding:
    url = ccp_url.rstrip("/") + "/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            date = resp.headers.get("Date")
    except urllib.error.HTTPError as exc:
        date = exc.headers.get("Date")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Finding("fail", f"CCP at {url} does not answer: {getattr(exc, 'reason', exc)}")
    if not date:
        return Finding("warn", f"CCP at {url} sent no Date header: cannot compare clocks")
    skew = time.time() - email.utils.parsedate_to_datetime(date).timestamp()
    if abs(skew) > MAX_SKEW_S - 5:
        return Finding("fail", f"this host's clock is {skew:+.0f} s off CCP's: the agent would refuse CCP's "
                               "requests; fix the time (NTP) on one of them")
    return Finding("ok", f"this host's clock is within {max(1, round(abs(skew)))} s of CCP's")


def report(findings: list[Finding]) -> tuple[str, int]:
    """The findings as lines for a terminal, and the exit code (1 when any check failed)."""
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = [f"{marks[f.level]}  {f.text}" for f in findings]
    fails = sum(f.level == "fail" for f in findings)
    warns = sum(f.level == "warn" for f in findings)
    lines.append(f"{fails} problem(s), {warns} warning(s)" if fails or warns else "all checks passed")
    return "\n".join(lines), 1 if fails else 0

