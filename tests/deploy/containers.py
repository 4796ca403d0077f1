"""Images for the container tests, built here because no public registry is reachable (standard library only).

    base      127.0.0.1:5055/ccp-base/python:bookworm  Debian bookworm (debootstrap, minbase) + python3, venv, CA
                                                      certificates: what the Dockerfiles' BASE argument gets in CI
    services  127.0.0.1:5055/ccp-base/services:bookworm  base + Debian's postgresql and redis-server, with an
                                                      entrypoint that behaves like the official images for what the
                                                      compose file uses (POSTGRES_USER/PASSWORD/DB, redis-server)
    ccp       127.0.0.1:5055/ccp-test/ccp:latest       ccp/deploy/docker/Dockerfile on the base
    agent     127.0.0.1:5055/ccp-test/ccp-agent:latest ccp/deploy/docker/agent.Dockerfile on the base

Each is rebuilt only when its inputs change: the base and services images carry a stamp of their recipe (this
file) in a label; the CCP images rely on Docker's layer cache. ``python3 tests/deploy/containers.py build``
builds all four (what a person would run before `docker compose up` here).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REGISTRY = os.environ.get("CCP_TEST_REGISTRY", "127.0.0.1:5055")
BASE = f"{REGISTRY}/ccp-base/python:bookworm"
SERVICES = f"{REGISTRY}/ccp-base/services:bookworm"
CCP = f"{REGISTRY}/ccp-test/ccp:latest"
AGENT = f"{REGISTRY}/ccp-test/ccp-agent:latest"
STAMP_LABEL = "org.ccp.test.recipe"
BASE_RECIPE = "debootstrap minbase bookworm python3 python3-venv ca-certificates v1"

SERVICES_ENTRYPOINT = r"""#!/bin/sh
# postgres: like the official image for what CCP's compose file uses (POSTGRES_USER/PASSWORD/DB, data in
# /var/lib/postgresql/data); anything else runs as given (redis-server ...).
set -eu
if [ "${1:-}" = postgres ]; then
    data=/var/lib/postgresql/data
    mkdir -p "$data" /run/postgresql && chown -R postgres:postgres "$data" /run/postgresql
    bin=$(ls -d /usr/lib/postgresql/*/bin | head -n 1)
    if [ ! -s "$data/PG_VERSION" ]; then
        printf '%s' "$POSTGRES_PASSWORD" > /tmp/pw && chown postgres /tmp/pw
        su postgres -s /bin/sh -c "$bin/initdb -D $data -U '$POSTGRES_USER' --pwfile=/tmp/pw --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256" >/dev/null
        rm -f /tmp/pw
        echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
        su postgres -s /bin/sh -c "$bin/pg_ctl -D $data -o '-c listen_addresses=' -w start" >/dev/null
        su postgres -s /bin/sh -c "$bin/createdb -U '$POSTGRES_USER' '${POSTGRES_DB:-$POSTGRES_USER}'"
        su postgres -s /bin/sh -c "$bin/pg_ctl -D $data -m fast -w stop" >/dev/null
    fi
    exec su postgres -s /bin/sh -c "exec $bin/postgres -D $data -c listen_addresses='*'"
fi
exec "$@"
"""

SERVICES_DOCKERFILE = """ARG BASE
FROM ${BASE}
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
        postgresql redis-server && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
RUN chmod 755 /usr/local/bin/entrypoint.sh
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
"""


def _run(cmd: list[str], *, timeout: float, input: bytes | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, cwd=cwd, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-1500:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {tail}")
    return proc.stdout.decode(errors="replace").strip()


def _recipe(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _stamp_of(ref: str) -> str | None:
    """The recipe label of ``ref`` if it is here or can be pulled from the local registry."""
    for attempt in range(2):
        proc = subprocess.run(["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{STAMP_LABEL}"}}}}',
                               ref], capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode == 0:
            return proc.stdout.strip()
        if attempt == 0:
            subprocess.run(["docker", "pull", "-q", ref], capture_output=True, timeout=300, check=False)
    return None


def _image_id(ref: str) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _drop_replaced(ref: str, old_id: str | None) -> None:
    """Remove the image ``ref`` pointed at before a rebuild: under the vfs storage driver every image keeps full
    copies of its layers, so replaced ones would fill the disk run after run."""
    if old_id and old_id != _image_id(ref):
        subprocess.run(["docker", "rmi", old_id], capture_output=True, timeout=120, check=False)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap needs the same reachable one)."""
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.replace("URIs:", " ").split()
            for word in words:
                if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                    return word
    return "http://deb.debian.org/debian"


def local_cas() -> dict[str, bytes]:
    """The CA certificates this machine adds to Debian's (update-ca-certificates' local folder).

    Where the package index is reached through a TLS-inspecting proxy, its CA is among them; the base image
    trusts them too (and pip is pointed at the system bundle), as a self-hoster behind such a proxy would do.
    """
    folder = Path("/usr/local/share/ca-certificates")
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.crt"))} if folder.is_dir() else {}


def build_base(log=print) -> str:
    """Debian bookworm with python3 from Debian's packages, imported as BASE and pushed (when its recipe changed)."""
    cas = local_cas()
    recipe = _recipe("base", BASE_RECIPE, *(f"{k}:{hashlib.sha256(v).hexdigest()}" for k, v in cas.items()))
    if _stamp_of(BASE) == recipe:
        log(f"{BASE} up to date ({recipe})")
        return BASE
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    started, old_id = time.monotonic(), _image_id(BASE)
    with tempfile.TemporaryDirectory(prefix="ccp-base-") as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
              str(root), debian_mirror()], timeout=900)
        for name, data in cas.items():
            (root / "usr/local/share/ca-certificates" / name).write_bytes(data)
        if cas:
            _run(["chroot", str(root), "update-ca-certificates"], timeout=120)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CMD [\"/bin/bash\"]",
                   "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                   f"LABEL {STAMP_LABEL}={recipe}"]
        cmd = ["docker", "import"] + [a for c in changes for a in ("--change", c)] + ["-", BASE]
        imported = subprocess.run(cmd, stdin=tar.stdout, capture_output=True, timeout=600, check=False)
        tar.wait(timeout=60)
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr.decode(errors='replace')[-500:]}")
    _run(["docker", "push", BASE], timeout=600)
    _drop_replaced(BASE, old_id)
    log(f"built {BASE} in {time.monotonic() - started:.0f}s")
    return BASE



def build_services(log=print) -> str:
    """PostgreSQL and Redis from Debian's packages on the base (the compose file's postgres and redis images)."""
    base = build_base(log)
    recipe = _recipe("services", SERVICES_DOCKERFILE, SERVICES_ENTRYPOINT, _stamp_of(base) or "")
    if _stamp_of(SERVICES) == recipe:
        log(f"{SERVICES} up to date ({recipe})")
        return SERVICES
    started, old_id = time.monotonic(), _image_id(SERVICES)
    with tempfile.TemporaryDirectory(prefix="ccp-services-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(SERVICES_DOCKERFILE)
        (Path(tmp) / "entrypoint.sh").write_text(SERVICES_ENTRYPOINT)
        _run(["docker", "build", "-q", "--build-arg", f"BASE={base}", "--label", f"{STAMP_LABEL}={recipe}",
              "-t", SERVICES, tmp], timeout=900)
    _run(["docker", "push", SERVICES], timeout=600)
    _drop_replaced(SERVICES, old_id)
    log(f"built {SERVICES} in {time.monotonic() - started:.0f}s")
    return SERVICES


CONTEXT = ("pyproject.toml", "setup.py", "README.md", "ccp", "templates", "static", "migrations")


def build_ccp_images(log=print, refs: tuple[str, ...] = (CCP, AGENT)) -> tuple[str, str]:
    """Both CCP images (or those of ``refs``) from this checkout on the base, as the docs say (Docker's layer cache
    keeps repeats short). The agent image's recipe is its ``ccp/`` folder only: all its Dockerfile copies.

    The build context is a copy of just what the Dockerfiles read: the checkout itself may hold files that
    other processes are writing (test output), which breaks the context's tar stream.
    """
    base = build_base(log)
    with tempfile.TemporaryDirectory(prefix="ccp-context-") as tmp:
        for name in CONTEXT:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, Path(tmp) / name)
        sources = {CCP: _tree_hash(Path(tmp)), AGENT: _tree_hash(Path(tmp) / "ccp")}
        for ref, dockerfile in ((CCP, "Dockerfile"), (AGENT, "agent.Dockerfile")):
            if ref not in refs:
                continue
            recipe = _recipe(ref, sources[ref], _stamp_of(base) or "")
            if _stamp_of(ref) == recipe:  # same sources, same base: Docker would only replay its cache
                log(f"{ref} up to date ({recipe})")
                continue
            started, old_id = time.monotonic(), _image_id(ref)
            _run(["docker", "build", "-q", "-f", str(Path(tmp) / "ccp/deploy/docker" / dockerfile),
                  "--build-arg", f"BASE={base}", "--label", f"{STAMP_LABEL}={recipe}", "-t", ref, tmp],
                 timeout=1200)
            _drop_replaced(ref, old_id)
            log(f"built {ref} in {time.monotonic() - started:.0f}s")
    return CCP, AGENT


def build_agent_image(log=print) -> str:
    """The agent image alone (what the container agent tests need)."""
    return build_ccp_images(log, refs=(AGENT,))[1]


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python3 tests/deploy/containers.py build")
    build_services()
    build_ccp_images()
