"""Test images and tenant install dirs for the e2e tier (real Docker).

Standard library only, so it works both as an importable helper for tests and as the image builder that
``.ci/docker-up.sh`` runs (``python3 tests/e2e/images.py build``).

Images (pushed to the local registry, default 127.0.0.1:5055):

    ccp-test/web:v1         busybox httpd; GET / -> "version v1", GET /healthz -> "ok"
    ccp-test/web:v2         same, "version v2"
    ccp-test/web:latest     same as v1 (compose files default to ${IMAGE_TAG:-latest})
    ccp-test/web:broken     exits at once with status 3
    ccp-test/web:unhealthy  serves "version unhealthy" on /, but /healthz is missing (404) so a health check fails

Every web image listens on ``$PORT`` (default 8080), so a test can run it with host networking if bridge
networking is unavailable. The images are built from the host's ``busybox-static`` binary with
``tar -C ROOT -c . | docker import`` - nothing is fetched from the internet.

Tenant dirs: :func:`make_tenant_dir` writes a docker-compose.yml + .env the way a real tenant install looks
(``image: REGISTRY/ccp-test/web:${IMAGE_TAG:-latest}``, a secret-like variable, a published port on 127.0.0.1,
a health check), for the e2e tests of hostops/upgrades to reuse.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REGISTRY = os.environ.get("CCP_TEST_REGISTRY", "127.0.0.1:5055")
REPOSITORY = "ccp-test/web"
DEFAULT_PORT = 8080
STATE_DIR = Path(os.environ.get("CCP_CI_STATE_DIR", "/var/lib/ccp-ci"))

# tag -> (kind, page version text). "latest" is an alias of v1.
IMAGE_SPECS: dict[str, tuple[str, str]] = {
    "v1": ("web", "v1"),
    "v2": ("web", "v2"),
    "latest": ("web", "v1"),
    "broken": ("broken", "broken"),
    "unhealthy": ("unhealthy", "unhealthy"),
}
TEST_TAGS = tuple(IMAGE_SPECS)

# Applets the images need; all others are linked too when busybox can list them.
_REQUIRED_APPLETS = ("sh", "httpd", "wget", "echo", "cat", "sleep", "env", "ls", "true", "false", "nc")

_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

_START_WEB = """#!/bin/sh
# ccp test web image: busybox httpd on $PORT (default 8080), serving /www
PORT="${PORT:-8080}"
echo "ccp-test web image version %(version)s listening on port $PORT"
# httpd runs as a child so that this shell (PID 1) can stop it on SIGTERM: PID 1 without a handler ignores
# SIGTERM, and every `compose down`/`up` recreate would then wait out the whole stop grace period.
httpd -f -v -p "$PORT" -h /www &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
"""

_START_BROKEN = """#!/bin/sh
echo "ccp-test broken image: exiting with status 3 on purpose" >&2
exit 3
"""


def image_ref(tag: str, registry: str = REGISTRY) -> str:
    return f"{registry}/{REPOSITORY}:{tag}"


def test_image_refs(registry: str = REGISTRY) -> dict[str, str]:
    return {tag: image_ref(tag, registry) for tag in TEST_TAGS}


def find_busybox() -> str:
    for cand in _BUSYBOX_CANDIDATES:
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise FileNotFoundError("busybox not found (apt-get install busybox-static)")


def _busybox_applets(busybox: str) -> list[str]:
    try:
        out = subprocess.run([busybox, "--list"], capture_output=True, text=True, timeout=10, check=True).stdout
        applets = [a.strip() for a in out.split() if a.strip() and "/" not in a]
    except (subprocess.SubprocessError, OSError):
        applets = []
    return sorted(set(applets) | set(_REQUIRED_APPLETS))


def _is_static(path: str) -> bool:
    try:
        out = subprocess.run(["file", "-L", path], check=False, capture_output=True, text=True, timeout=10).stdout
    except (subprocess.SubprocessError, OSError):
        return True  # `file` missing: trust busybox-static
    return "statically linked" in out or "static-pie" in out


def rootfs_tar(kind: str, version: str, busybox: str | None = None) -> bytes:
    """Build the image root filesystem as a deterministic tar (same inputs -> same bytes -> same layer)."""
    busybox = busybox or find_busybox()
    if not _is_static(busybox):
        raise RuntimeError(f"{busybox} is not statically linked (need busybox-static)")
    if kind not in ("web", "broken", "unhealthy"):
        raise ValueError(f"unknown image kind {kind!r}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, 0
            tar.addfile(ti)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, 0
            tar.addfile(ti, io.BytesIO(data))

        def add_link(name: str, target: str) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, 0
            tar.addfile(ti)

        for d in ("bin", "etc", "www", "tmp", "proc", "sys", "dev", "var", "root"):
            add_dir(d, 0o1777 if d == "tmp" else 0o755)
        add_file("bin/busybox", Path(busybox).read_bytes(), 0o755)
        for applet in _busybox_applets(busybox):
            if applet != "busybox":
                add_link(f"bin/{applet}", "busybox")
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_file("etc/ccp-test-version", f"{version}\n".encode())
        page = (
            f"<!doctype html><html><head><title>ccp-test {version}</title></head>"
            f"<body><h1>ccp test web</h1><p id=\"version\">version {version}</p></body></html>\n"
        ).encode()
        add_file("www/index.html", page)
        add_file("www/version.txt", f"version {version}\n".encode())
        if kind == "web":
            add_file("www/healthz", b"ok\n")
        if kind == "broken":
            add_file("start.sh", _START_BROKEN.encode(), 0o755)
        else:
            add_file("start.sh", (_START_WEB % {"version": version}).encode(), 0o755)
    return buf.getvalue()


def _run(cmd: list[str], *, timeout: float, input: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, check=False, input=input, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed with exit {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip() or proc.stdout.decode(errors='replace').strip()}"
        )
    return proc


def build_image(ref: str, kind: str, version: str, *, push: bool = True, timeout: float = 120) -> str:
    """docker import a busybox rootfs as ``ref`` (and push it). Returns the image id."""
    data = rootfs_tar(kind, version)
    changes = [
        'CMD ["/bin/sh", "/start.sh"]',
        "ENV PATH=/bin",
        f"ENV PORT={DEFAULT_PORT}",
        f"EXPOSE {DEFAULT_PORT}",
        f"LABEL org.ccp.test.version={version} org.ccp.test.kind={kind}",
    ]
    cmd = ["docker", "import"]
    for c in changes:
        cmd += ["--change", c]
    cmd += ["-", ref]
    image_id = _run(cmd, timeout=timeout, input=data).stdout.decode().strip()
    if push:
        _run(["docker", "push", ref], timeout=timeout)
    return image_id


def recipe_hash() -> str:
    """Changes whenever the image recipe (this file) or the busybox binary changes."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    try:
        h.update(Path(find_busybox()).read_bytes())
    except FileNotFoundError:
        pass
    return h.hexdigest()[:16]


def registry_tags(registry: str = REGISTRY, timeout: float = 5) -> set[str]:
    url = f"http://{registry}/v2/{REPOSITORY}/tags/list"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return set(json.load(resp).get("tags") or [])
    except (urllib.error.URLError, OSError, ValueError):
        return set()


def build_all(registry: str = REGISTRY, *, force: bool = False, log=print) -> dict[str, str]:
    """Build + push every test image unless the registry already has them from the same recipe."""
    stamp = STATE_DIR / f"images-{registry.replace(':', '_')}.stamp"
    want = recipe_hash()
    refs = test_image_refs(registry)
    if not force and stamp.exists() and stamp.read_text().strip() == want and set(TEST_TAGS) <= registry_tags(
        registry
    ):
        log(f"test images up to date in {registry} (recipe {want})")
        return refs
    for tag, (kind, version) in IMAGE_SPECS.items():
        t0 = time.monotonic()
        build_image(refs[tag], kind, version, push=True)
        log(f"built+pushed {refs[tag]} ({kind}) in {time.monotonic() - t0:.1f}s")
    missing = set(TEST_TAGS) - registry_tags(registry)
    if missing:
        raise RuntimeError(f"registry {registry} lacks tags after push: {sorted(missing)}")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    stamp.write_text(want + "\n")
    return refs


# ---------------------------------------------------------------------------------------------------------------
# Tenant install dirs
# ---------------------------------------------------------------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def network_mode() -> str:
    """'bridge' (ports published on 127.0.0.1) or 'host' (containers share the host network).

    Written by .ci/docker-up.sh after its port-publishing smoke test; CCP_E2E_NETWORK overrides.
    """
    env = os.environ.get("CCP_E2E_NETWORK")
    if env in ("bridge", "host"):
        return env
    try:
        mode = (STATE_DIR / "network-mode").read_text().strip()
    except OSError:
        return "bridge"
    return mode if mode in ("bridge", "host") else "bridge"


COMPOSE_TEMPLATE_BRIDGE = """\
# Test tenant generated by tests/e2e/images.py (make_tenant_dir)
name: {project}
services:
  {service}:
    image: {registry}/{repository}:${{IMAGE_TAG:-latest}}
    environment:
      PORT: "{container_port}"
      APP_SECRET: ${{APP_SECRET:?APP_SECRET must be set in .env}}
      APP_NAME: ${{APP_NAME:-ccp-test}}
    ports:
      - "127.0.0.1:${{WEB_PORT:?WEB_PORT must be set in .env}}:{container_port}"
{healthcheck}    restart: "{restart}"
    stop_grace_period: 1s
"""

COMPOSE_TEMPLATE_HOST = """\
# Test tenant generated by tests/e2e/images.py (make_tenant_dir), host networking
name: {project}
services:
  {service}:
    image: {registry}/{repository}:${{IMAGE_TAG:-latest}}
    network_mode: host
    environment:
      PORT: "${{WEB_PORT:?WEB_PORT must be set in .env}}"
      APP_SECRET: ${{APP_SECRET:?APP_SECRET must be set in .env}}
      APP_NAME: ${{APP_NAME:-ccp-test}}
{healthcheck}    restart: "{restart}"
    stop_grace_period: 1s
"""

HEALTHCHECK_TEMPLATE = """\
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:{port}/healthz"]
      interval: 1s
      timeout: 2s
      retries: 3
      start_period: 2s
"""

UPGRADE_SCRIPT = """\
#!/bin/sh
# tenant-owned upgrade script (test fixture): pull + recreate with the files as they are
set -eu
cd "$(dirname "$0")/.."
docker compose pull
docker compose up -d --remove-orphans
"""


def make_tenant_dir(
    path,
    tag: str = "v1",
    port: int | None = None,
    *,
    project: str | None = None,
    registry: str = REGISTRY,
    service: str = "web",
    secret: str | None = None,
    healthcheck: bool = True,
    restart: str = "no",
    network: str | None = None,
    extra_env: dict[str, str] | None = None,
    upgrade_script: bool = True,
) -> dict:
    """Write a tenant install dir (docker-compose.yml, .env, scripts/upgrade.sh) into ``path``.

    The compose file references ``${IMAGE_TAG:-latest}``, ``${WEB_PORT}`` and a secret ``${APP_SECRET}``; the
    .env holds their values. ``network`` is 'bridge' (publish 127.0.0.1:port -> 8080) or 'host' (the container
    listens on ``port`` itself); default from :func:`network_mode`. Returns a dict describing the tenant
    (path, project, port, url, tag, secret, compose_file, env_file, service, network).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    network = network or network_mode()
    project = project or f"ccptest-{os.getpid()}-{port}"
    secret = secret or "s3cr3t-" + hashlib.sha256(f"{project}{time.time_ns()}".encode()).hexdigest()[:20]
    container_port = DEFAULT_PORT if network == "bridge" else port
    hc = HEALTHCHECK_TEMPLATE.format(port=container_port) if healthcheck else ""
    tmpl = COMPOSE_TEMPLATE_BRIDGE if network == "bridge" else COMPOSE_TEMPLATE_HOST
    compose = tmpl.format(
        project=project,
        service=service,
        registry=registry,
        repository=REPOSITORY,
        container_port=container_port,
        healthcheck=hc,
        restart=restart,
    )
    env_lines = [
        "# tenant environment (test fixture)",
        f"IMAGE_TAG={tag}",
        f"WEB_PORT={port}",
        f"APP_SECRET={secret}",
    ]
    for k, v in (extra_env or {}).items():
        env_lines.append(f"{k}={v}")
    (path / "docker-compose.yml").write_text(compose)
    (path / ".env").write_text("\n".join(env_lines) + "\n")
    if upgrade_script:
        (path / "scripts").mkdir(exist_ok=True)
        script = path / "scripts" / "upgrade.sh"
        script.write_text(UPGRADE_SCRIPT)
        script.chmod(0o755)
    return {
        "path": path,
        "project": project,
        "service": service,
        "port": port,
        "url": f"http://127.0.0.1:{port}/",
        "tag": tag,
        "secret": secret,
        "network": network,
        "compose_file": path / "docker-compose.yml",
        "env_file": path / ".env",
    }


def set_env_value(env_file, key: str, value: str) -> None:
    """Set KEY=value in a .env file in place (other lines untouched; appended when missing)."""
    env_file = Path(env_file)
    lines = env_file.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.split("=", 1)[0].strip() == key and not line.lstrip().startswith("#"):
            lines[i] = f"{key}={value}\n"
            break
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{key}={value}\n")
    env_file.write_text("".join(lines))


def compose(install_dir, project: str, *args: str, timeout: float = 120, check: bool = False):
    """Run ``docker compose -p PROJECT ARGS`` in ``install_dir`` with a timeout; returns CompletedProcess."""
    cmd = ["docker", "compose", "-p", project, *args]
    proc = subprocess.run(cmd, check=False, cwd=str(install_dir), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def compose_ps(install_dir, project: str, timeout: float = 30) -> list[dict]:
    """Parsed ``docker compose ps -a --format json`` (handles both NDJSON and a JSON array)."""
    proc = compose(install_dir, project, "ps", "-a", "--format", "json", timeout=timeout, check=True)
    text = proc.stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def http_get(url: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for_http(url: str, contains: str, timeout: float = 30) -> str:
    """Poll ``url`` until its body contains ``contains``; returns the body. Raises TimeoutError."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = http_get(url)
            last = f"HTTP {status}: {body[:200]!r}"
            if status == 200 and contains in body:
                return body
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not serve {contains!r} within {timeout}s (last: {last})")


def wait_for_service(install_dir, project: str, service: str, predicate, timeout: float = 60) -> dict:
    """Poll compose ps until ``predicate(row)`` is true for ``service``; returns the row."""
    deadline = time.monotonic() + timeout
    row: dict = {}
    while time.monotonic() < deadline:
        rows = [r for r in compose_ps(install_dir, project) if r.get("Service") == service]
        if rows:
            row = rows[0]
            if predicate(row):
                return row
        time.sleep(0.5)
    raise TimeoutError(f"service {service} of {project} did not reach the wanted state in {timeout}s: {row}")


class ComposeTenant:
    """A tenant install dir plus handy compose operations (see :func:`make_tenant_dir`)."""

    def __init__(self, info: dict):
        self.info = info
        self.path: Path = info["path"]
        self.project: str = info["project"]
        self.service: str = info["service"]
        self.port: int = info["port"]
        self.url: str = info["url"]
        self.secret: str = info["secret"]
        self.env_file: Path = info["env_file"]
        self.compose_file: Path = info["compose_file"]

    def __repr__(self) -> str:
        return f"<ComposeTenant {self.project} {self.path} port={self.port}>"

    def compose(self, *args: str, timeout: float = 120, check: bool = False):
        return compose(self.path, self.project, *args, timeout=timeout, check=check)

    def ps(self) -> list[dict]:
        return compose_ps(self.path, self.project)

    def service_row(self) -> dict:
        rows = [r for r in self.ps() if r.get("Service") == self.service]
        return rows[0] if rows else {}

    def set_tag(self, tag: str) -> None:
        set_env_value(self.env_file, "IMAGE_TAG", tag)

    def wait_http(self, contains: str, timeout: float = 30, path: str = "") -> str:
        return wait_for_http(self.url + path.lstrip("/"), contains, timeout)

    def wait_service(self, predicate, timeout: float = 60) -> dict:
        return wait_for_service(self.path, self.project, self.service, predicate, timeout)

    def down(self, timeout: float = 90):
        return self.compose("down", "-v", "--remove-orphans", "--timeout", "1", timeout=timeout)


def down_all(tenants, label: str) -> None:
    """`compose down` every tenant (each has .down() and .project); print problems instead of hiding them."""
    problems = []
    for tenant in tenants:
        try:
            proc = tenant.down()
            if proc.returncode != 0:
                problems.append(f"{tenant.project}: down exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        except subprocess.TimeoutExpired:
            problems.append(f"{tenant.project}: down timed out")
    if problems:  # teardown problems should be visible, not silently leave containers behind
        print(f"{label} teardown problems:\n  " + "\n  ".join(problems), file=sys.stderr)


def push_web_image(tag: str, version: str, *, kind: str = "web", registry: str = REGISTRY) -> str:
    """Build + push an extra test image under ``tag`` (e.g. to move a tag to new content for a
    Quick Upgrade test: same tag, new digest). Returns the registry manifest digest."""
    ref = image_ref(tag, registry)
    build_image(ref, kind, version, push=True)
    digest = manifest_digest(tag, registry)
    if not digest:
        raise RuntimeError(f"{ref} pushed but the registry has no manifest for it")
    return digest


_MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"


def manifest_digest(tag: str, registry: str = REGISTRY, timeout: float = 5) -> str | None:
    req = urllib.request.Request(
        f"http://{registry}/v2/{REPOSITORY}/manifests/{tag}", method="HEAD", headers={"Accept": _MANIFEST_ACCEPT}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.headers.get("Docker-Content-Digest")
    except (urllib.error.URLError, OSError):
        return None


def delete_registry_tag(tag: str, registry: str = REGISTRY, timeout: float = 5) -> bool:
    """Remove a tag's manifest from the local registry (deletion is enabled in docker-up.sh's config)."""
    digest = manifest_digest(tag, registry, timeout)
    if not digest:
        return False
    req = urllib.request.Request(f"http://{registry}/v2/{REPOSITORY}/manifests/{digest}", method="DELETE")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status == 202
    except (urllib.error.URLError, OSError):
        return False


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build and push the test images")
    b.add_argument("--registry", default=REGISTRY)
    b.add_argument("--force", action="store_true")
    r = sub.add_parser("rootfs", help="write one image rootfs tar to stdout")
    r.add_argument("kind", choices=["web", "broken", "unhealthy"])
    r.add_argument("version")
    t = sub.add_parser("tenant", help="write a tenant dir (for manual poking)")
    t.add_argument("path")
    t.add_argument("--tag", default="v1")
    t.add_argument("--port", type=int)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        for tag, ref in build_all(args.registry, force=args.force).items():
            print(f"{tag} -> {ref}")
    elif args.cmd == "rootfs":
        sys.stdout.buffer.write(rootfs_tar(args.kind, args.version))
    elif args.cmd == "tenant":
        info = make_tenant_dir(args.path, args.tag, args.port)
        print(json.dumps({k: str(v) for k, v in info.items()}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main())
    except (RuntimeError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
        print(f"images.py: {exc}", file=sys.stderr)
        sys.exit(1)
