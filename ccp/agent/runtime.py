"""What the agent can tell about its host: the Docker and compose versions, the compose projects of existing
containers, and what an install dir holds (names only).

Used by `/v1/health` (the optional runtime fields enrollment shows), `ccp agent init` (project detection) and
`ccp agent check`. Every probe is one subprocess with a short timeout and the agent's keys scrubbed from its
environment; a probe that fails answers a plain sentence instead of raising.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ccp.hostops.compose import detect_compose
from ccp.hostops.dryrun import is_dry_run
from ccp.hostops.errors import ComposeUnavailable
from ccp.hostops.process import scrubbed_env
from ccp.protocol import HEALTH_FILES_CAP

PROBE_TIMEOUT_S = 3.0
CACHE_S = 60.0  # versions change with a package upgrade, not between two health calls
PROJECT_LABEL = "com.docker.compose.project"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"
# The agent's own reserved folder in an install dir (ccp.hostops.paths refuses it) is not the tenant's file.
_HIDDEN_ENTRIES = frozenset({".ccp"})


@dataclass(frozen=True)
class Answer:
    """A probe's outcome: ``ok`` with the command's output, or not ok with a plain-words ``text``."""

    ok: bool
    text: str


def run_probe(argv: list[str], timeout: float = PROBE_TIMEOUT_S) -> Answer:
    """Run ``argv`` (no stdin, keys scrubbed) within ``timeout``; never raises."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=scrubbed_env(), check=False)
    except FileNotFoundError:
        return Answer(False, f"{argv[0]} is not installed (not found on PATH)")
    except OSError as exc:
        return Answer(False, f"{argv[0]} cannot be run: {exc.strerror or exc}")
    except subprocess.TimeoutExpired:
        return Answer(False, f"'{' '.join(argv[:2])}' gave no answer within {timeout:g} s")
    if proc.returncode != 0:
        return Answer(False, _explain(proc.stderr or proc.stdout, argv, proc.returncode))
    return Answer(True, proc.stdout.strip())


def _explain(output: str, argv: list[str], code: int) -> str:
    text = " ".join(output.split())
    low = text.lower()
    if "permission denied" in low and "docker" in low:
        return ("this user may not use the Docker socket (permission denied): add it to the 'docker' group "
                "or run the agent as root")
    if "cannot connect to the docker daemon" in low or "is the docker daemon running" in low:
        return "the Docker daemon is not running (or DOCKER_HOST points to a daemon that does not answer)"
    return f"'{' '.join(argv[:2])}' failed (exit {code}): {text[:200] or 'no output'}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def _docker_socket() -> str | None:
    """The engine's Unix socket (DOCKER_HOST unix://..., else the default), or None for a TCP DOCKER_HOST."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return None if host else "/var/run/docker.sock"


def docker_api(path: str, timeout: float = PROBE_TIMEOUT_S) -> dict | list | Answer:
    """GET ``path`` from the Docker engine API over its Unix socket (no docker CLI needed: the agent's container
    has none); an Answer saying why when it cannot. A TCP DOCKER_HOST is left to the CLI."""
    sock = _docker_socket()
    if sock is None:
        return Answer(False, "DOCKER_HOST is not a unix:// socket")
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    except FileNotFoundError:
        return Answer(False, f"no Docker socket at {sock}: the Docker daemon is not installed or not running"
                             " (or, in a container, the socket is not mounted)")
    except PermissionError:
        return Answer(False, f"this user may not use the Docker socket {sock} (permission denied): add it to the "
                             "'docker' group or run the agent as root")
    except ConnectionRefusedError:
        return Answer(False, f"the Docker daemon is not running (nothing answers on {sock})")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(False, f"the Docker socket {sock} gave no usable answer ({type(exc).__name__})")
    finally:
        conn.close()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if resp.status != 200 or data is None:
        return Answer(False, f"the Docker engine answered HTTP {resp.status} to {path.split('?')[0]}")
    return data


def docker_version(timeout: float = PROBE_TIMEOUT_S) -> Answer:
    """The Docker engine's version (the server's, so it proves the engine answers): its API over the socket,
    or the docker CLI when DOCKER_HOST names a TCP address."""
    if _docker_socket() is None:
        return run_probe(["docker", "version", "--format", "{{.Server.Version}}"], timeout)
    data = docker_api("/version", timeout)
    if isinstance(data, Answer):
        return data
    version = data.get("Version") if isinstance(data, dict) else None
    return Answer(True, version) if isinstance(version, str) else Answer(False, "the engine reported no version")


def compose_version(command: list[str] | None, timeout: float = PROBE_TIMEOUT_S) -> Answer:
    """The compose version of ``command`` (None: autodetected like the agent does), or why there is none."""
    if is_dry_run(command):
        return Answer(True, "dry-run")
    try:
        base = list(command) if command else detect_compose()
    except ComposeUnavailable as exc:
        return Answer(False, str(exc))
    return run_probe(base + ["version", "--short"], timeout)


def compose_projects(timeout: float = PROBE_TIMEOUT_S) -> dict[str, set[str]] | Answer:
    """Working dir -> compose projects of the containers Docker knows (running or stopped), or why not."""
    if _docker_socket() is None:
        fmt = "{{.Label \"%s\"}}\t{{.Label \"%s\"}}" % (PROJECT_LABEL, WORKDIR_LABEL)
        answer = run_probe(["docker", "ps", "--all", "--filter", f"label={PROJECT_LABEL}", "--format", fmt], timeout)
        if not answer.ok:
            return answer
        pairs = [line.partition("\t")[::2] for line in answer.text.splitlines()]
    else:
        query = urllib.parse.urlencode({"all": "1", "filters": json.dumps({"label": [PROJECT_LABEL]})})
        data = docker_api(f"/containers/json?{query}", timeout)
        if isinstance(data, Answer):
            return data
        labels = [c.get("Labels") or {} for c in data if isinstance(c, dict)] if isinstance(data, list) else []
        pairs = [(str(lab.get(PROJECT_LABEL, "")), str(lab.get(WORKDIR_LABEL, ""))) for lab in labels]
    found: dict[str, set[str]] = {}
    for project, workdir in pairs:
        if project.strip() and workdir.strip():
            found.setdefault(os.path.normpath(workdir.strip()), set()).add(project.strip())
    return found


def running_image_digests(project: str, timeout: float = PROBE_TIMEOUT_S) -> dict[str, str] | Answer:
    """Image reference as the compose file names it (``repo:tag``) -> registry digest of the image the compose
    project's containers run, e.g. ``{"127.0.0.1:5055/team/web:v2": "sha256:..."}``: the image's RepoDigests entry
    for that repository (what Docker recorded when it pulled or pushed it). Two services on one repository with two
    tags are told apart; an image built locally and never pulled or pushed has no digest and is left out.

    Read through the engine API (one call for the containers, one per distinct image); an Answer saying why when
    Docker cannot be asked."""
    if _docker_socket() is None:
        return Answer(False, "DOCKER_HOST is not a unix:// socket")
    query = urllib.parse.urlencode({"filters": json.dumps({"label": [f"{PROJECT_LABEL}={project}"]})})
    containers = docker_api(f"/containers/json?{query}", timeout)
    if isinstance(containers, Answer):
        return containers
    repo_digests: dict[str, dict[str, str]] = {}  # image id -> {repository: digest}
    found: dict[str, str] = {}
    for container in containers if isinstance(containers, list) else ():
        ref, image_id = container.get("Image"), container.get("ImageID")
        if not (isinstance(ref, str) and isinstance(image_id, str) and image_id.startswith("sha256:")):
            continue
        if ref.startswith("sha256:") and isinstance(container.get("Id"), str):
            # The tag was moved since the container started (a pull without an up): the list shows the image id,
            # the container's own record still has the name it was created from.
            details = docker_api(f"/containers/{container['Id']}/json", timeout)
            ref = (details.get("Config") or {}).get("Image") if isinstance(details, dict) else None
            if not isinstance(ref, str) or ref.startswith("sha256:"):
                continue
        if image_id not in repo_digests:
            image = docker_api(f"/images/{image_id}/json", timeout)
            pairs = (str(r).partition("@") for r in (image.get("RepoDigests") or ()) if isinstance(image, dict))
            repo_digests[image_id] = {repo: digest for repo, _, digest in pairs if digest.startswith("sha256:")}
        name, tag = split_reference(ref)
        digest = repo_digests[image_id].get(name)
        if digest:
            found[f"{name}:{tag}"] = digest
    return found


def split_reference(ref: str) -> tuple[str, str]:
    """``repo[:tag][@digest]`` -> (repo, tag); the tag defaults to ``latest`` (a registry port is not a tag)."""
    ref = ref.partition("@")[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def disk_free(path: Path) -> int | None:
    """Free bytes (for an unprivileged user) on the file system holding ``path`` (its nearest existing parent), or
    None when it cannot be read."""
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def dir_entries(install_dir: Path, cap: int = HEALTH_FILES_CAP) -> dict:
    """Top-level names in ``install_dir`` (folders end in '/'), sorted, at most ``cap``; names only, never content.

    Answers ``{"exists", "count", "files", "truncated"}``; an unreadable dir says so in ``"error"``.
    """
    try:
        with os.scandir(install_dir) as it:
            names = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "")
                           for e in it if e.name not in _HIDDEN_ENTRIES)
    except FileNotFoundError:
        return {"exists": False, "count": 0, "files": [], "truncated": False}
    except OSError as exc:
        return {"exists": True, "count": 0, "files": [], "truncated": False,
                "error": f"cannot list it: {exc.strerror or exc}"}
    return {"exists": True, "count": len(names), "files": names[:cap], "truncated": len(names) > cap}


class RuntimeFacts:
    """Docker and compose versions for `/v1/health`, probed at most once per ``ttl`` seconds (each probe bounded by
    ``timeout``), so a health call costs at most two short subprocesses and usually none. A failed probe is
    cached too, so a host without Docker does not pay the timeout on every call."""

    def __init__(self, compose_command: list[str] | None, *, ttl: float = CACHE_S,
                 timeout: float = PROBE_TIMEOUT_S) -> None:
        self.compose_command = compose_command
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._facts: dict | None = None
        self._at = 0.0

    def get(self) -> dict:
        """``{"docker": version|None, "compose": version|None, "problems": [sentences]}`` (a fresh copy)."""
        with self._lock:
            if self._facts is None or time.monotonic() - self._at > self.ttl:
                self._facts = self._probe()
                self._at = time.monotonic()
            return {**self._facts, "problems": list(self._facts["problems"])}

    def _probe(self) -> dict:
        problems = []
        compose = compose_version(self.compose_command, self.timeout)
        if not compose.ok:
            problems.append(f"compose: {compose.text}")
        if is_dry_run(self.compose_command):  # the labelled stand-in runtime never talks to Docker
            docker = Answer(False, "")
        else:
            docker = docker_version(self.timeout)
            if not docker.ok:
                problems.append(f"docker: {docker.text}")
        return {"docker": docker.text if docker.ok else None, "compose": compose.text if compose.ok else None,
                "problems": problems}
