"""From empty hosts to an upgraded tenant, all in containers: docs/operations.md's compose path on the Docker tier.

The images are built here from Debian's packages (tests/deploy/containers.py: no public registry is reachable):
a python base, PostgreSQL + Redis, and CCP's two images from ccp/deploy/docker on that base. Then:
CCP's compose file comes up (migrate, web, worker, postgres, redis) -> /healthz ok -> an admin logs in through
the login form -> on the "tenant host" (this machine), the agent's container runs `ccp-agent init` against a
tenant an install script started (registered: it owns its .env), then serves it -> the printed
`ccp instance add` line runs in CCP's web container with the key on stdin -> the baseline preview at the current
tag changes nothing -> an upgrade to v2 goes through the agent container and the tenant serves v2.
"""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from ccp.models import FINAL_STATUSES
from tests.deploy import containers
from tests.e2e import upgrade_helpers as uh
from tests.e2e.conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "ccp" / "deploy" / "docker" / "compose.yaml"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def images():
    """(ccp, agent, services) image refs, built or found up to date (.ci/run builds them before pytest)."""
    if os.environ.get("CCP_CONTAINERS_SKIP_REASON"):
        unavailable("the container images were not built", skip_env="CCP_CONTAINERS_SKIP_REASON", fix="")
    try:
        services = containers.build_services(log=print)
        ccp, agent = containers.build_ccp_images(log=print)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        unavailable(f"building the container images failed: {exc}", skip_env="CCP_CONTAINERS_SKIP_REASON",
                    fix="see tests/deploy/containers.py (debootstrap, the local registry, the package index)")
    return ccp, agent, services


def _run(cmd, *, timeout=180, input=None, cwd=None, check=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, cwd=cwd, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:6])} -> exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class Stack:
    """CCP's compose project, started the documented way with an env file made from env.example."""

    def __init__(self, tmp: Path, ccp_image: str, services_image: str) -> None:
        self.project = f"ccpstack-{uuid.uuid4().hex[:8]}"
        self.port = uh.free_port()
        from cryptography.fernet import Fernet

        values = {"POSTGRES_PASSWORD": secrets.token_urlsafe(16), "CCP_SECRET_KEY": secrets.token_urlsafe(32),
                  "CCP_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "CCP_PORT": f"127.0.0.1:{self.port}"}
        lines = [f"{k}={values[k]}" if (k := line.split("=")[0]) in values else line
                 for line in (COMPOSE_FILE.parent / "env.example").read_text().splitlines()]
        lines += [f"CCP_IMAGE={ccp_image}", f"POSTGRES_IMAGE={services_image}", f"REDIS_IMAGE={services_image}"]
        self.env_file = tmp / "stack.env"
        self.env_file.write_text("\n".join(lines) + "\n")
        # this test's own template set (the e2e tenant's), as an operator adds theirs: a volume and one variable
        self.override = tmp / "sets.override.yaml"
        self.override.write_text(
            "services:\n" + "".join(
                f"  {svc}:\n    environment:\n      CCP_TEMPLATE_SETS_DIR: /sets\n      CCP_MONITOR_WINDOW_S: '2'\n"
                f"    volumes:\n      - {uh.SETS_DIR}:/sets:ro\n" for svc in ("migrate", "web", "worker")))
        self.url = f"http://127.0.0.1:{self.port}"

    def compose(self, *args, timeout=300, input=None, check=True):
        return _run(["docker", "compose", "-p", self.project, "--env-file", str(self.env_file), "-f",
                     str(COMPOSE_FILE), "-f", str(self.override), *args], timeout=timeout, input=input, check=check)

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout[-6000:]


def _get(url, *, opener=None, headers=None, data=None, method=None, timeout=10):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), resp.geturl()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), url


def _wait_healthz(stack: Stack, timeout=240):
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            status, body, _ = _get(stack.url + "/healthz", timeout=5)
            if status == 200 and json.loads(body)["status"] == "ok":
                return
            last = f"{status} {body[:200]}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = repr(exc)
        time.sleep(1)
    raise AssertionError(f"/healthz not ok within {timeout} s ({last}):\n{stack.logs()}")


def _login(stack: Stack) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, page, _ = _get(stack.url + "/login", opener=opener)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "username": "admin", "password": PASSWORD}).encode()
    status, page, final = _get(stack.url + "/login", opener=opener, data=form, method="POST")
    assert status == 200 and not final.endswith("/login"), f"login failed: {status} {final} {page[:300]}"
    return page


def _api(stack: Stack, token: str, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    status, text, _ = _get(stack.url + path, method=method, data=data, timeout=60,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return status, json.loads(text) if text else {}


@pytest.mark.timeout(900)  # a cold image build alone can take minutes (.ci/run builds them first)
def test_compose_stack_enrolls_a_containerised_agent_and_upgrades_its_tenant(images, tmp_path):
    ccp_image, agent_image, services_image = images
    stack = Stack(tmp_path, ccp_image, services_image)
    agent_name = f"ccpagent-{uuid.uuid4().hex[:8]}"
    tenant = None
    try:
        stack.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "240", timeout=300)
        _wait_healthz(stack)
        stack.compose("exec", "-T", "web", "ccp", "user", "create", "admin", "--role", "admin", "--password-stdin",
                      input=PASSWORD + "\n")
        assert "Log out" in _login(stack)
        token = stack.compose("exec", "-T", "web", "ccp", "token", "create", "e2e", "--scope", "admin", "--user",
                              "admin").stdout.strip().splitlines()[-1].split()[-1]

        # the tenant host: a registered tenant its own install script started at v1
        slug, project = f"acme-{uuid.uuid4().hex[:6]}", f"ccpe2e-{uuid.uuid4().hex[:8]}"
        install_dir = tmp_path / "srv" / slug
        port = uh.free_port()
        tenant_vars = uh.tenant_vars(port)
        files = uh.render_files(slug, project, "v1", tenant_vars, registered=True, domain=f"{slug}.example.test")
        uh.write_tree(install_dir, files)
        (install_dir / ".env").write_text(uh.REGISTERED_ENV.format(port=port, secret="s3cr3t-" + uuid.uuid4().hex))
        tenant = install_dir
        _run(["docker", "compose", "-p", project, "up", "-d"], cwd=install_dir, timeout=180)
        uh.wait_page(f"http://127.0.0.1:{port}/", "v1")

        etc = tmp_path / "etc-ccp"
        etc.mkdir()
        mounts = ["-v", f"{etc}:/etc/ccp", "-v", f"{install_dir}:{install_dir}",
                  "-v", "/var/run/docker.sock:/var/run/docker.sock"]
        init = _run(["docker", "run", "--rm", *mounts, agent_image, "ccp-agent", "init", "--instance",
                     f"{slug}={install_dir}", "--url", f"http://{agent_name}:8765", "--key-id", "k1",
                     "--domain", f"{slug}={slug}.example.test"], timeout=120)
        assert f"compose project '{project}' from its containers' compose label" in init.stdout, init.stdout
        add_line = next(x for x in init.stdout.splitlines() if "ccp instance add" in x)
        key = init.stdout.split("readable by its owner only):")[1].split()[0]
        _run(["docker", "run", "-d", "--name", agent_name, "--network", stack.network, *mounts,
              "-v", f"{agent_name}-state:/var/lib/ccp-agent", agent_image], timeout=60)

        argv = shlex.split(add_line) + ["--template-set", uh.SET_NAME] + [
            a for k, v in tenant_vars.items() for a in ("--var", f"{k}={v}")]
        added = stack.compose("exec", "-T", "web", *argv, input=key + "\n")
        assert f"added instance {slug}" in added.stdout

        status, baseline = _api(stack, token, "POST", f"/api/instances/{slug}/upgrade-release/preview",
                                {"imageTag": "v1"})
        assert status == 200, baseline
        assert {f["path"]: f["status"] for f in baseline["files"]} == {p: "unchanged" for p in files}, baseline
        status, preview = _api(stack, token, "POST", f"/api/instances/{slug}/upgrade-release/preview",
                               {"imageTag": "v2"})
        assert status == 200 and preview["env_patch"] == {"IMAGE_TAG": "v2"}, preview
        status, started = _api(stack, token, "POST", f"/api/instances/{slug}/upgrade-release",
                                {"imageTag": "v2", "plan": preview["plan_hash"]})
        assert status == 202, started
        deadline, upgrade = time.monotonic() + 180, started
        while time.monotonic() < deadline and upgrade.get("status") not in FINAL_STATUSES:
            time.sleep(1)
            upgrade = _api(stack, token, "GET", f"/api/upgrades/{started['id']}")[1]
        assert upgrade["status"] == "succeeded", f"{upgrade}\n{stack.logs()}"
        uh.wait_page(f"http://127.0.0.1:{port}/", "v2")
        assert "IMAGE_TAG=v2" in (install_dir / ".env").read_text()
    finally:
        subprocess.run(["docker", "rm", "-f", agent_name], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "volume", "rm", "-f", f"{agent_name}-state"], capture_output=True, timeout=60,
                       check=False)
        if tenant is not None:
            subprocess.run(["docker", "compose", "-p", project, "down", "-v", "--timeout", "1"], cwd=tenant,
                           capture_output=True, timeout=120, check=False)
        stack.compose("down", "-v", "--timeout", "5", check=False, timeout=180)
