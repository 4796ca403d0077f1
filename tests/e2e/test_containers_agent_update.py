"""Agent self-update of a container agent (issue #15) on real Docker: ccp/deploy/docker/agent.Dockerfile's image
(built on the Debian base by tests/deploy/containers.py) runs as documented -- the Docker socket, the tenant's
install dir at the same path, the config folder, a named state volume at /var/lib/ccp-agent -- with its port
published on loopback. CCP's service and RQ worker update it like any agent:

1. to a version that cannot start on this host (its cli exits with 3 where a marker sits beside the config): its
   launcher restores the image's code, and the rollout halts with that reason;
2. to a good version built from this checkout: it answers it, its own checks passed in the container (real Docker
   and compose), CCP confirmed it; `docker restart` keeps it (the code lives in the state volume);
3. a container from a NEWER image (the same agent with a newer version) on the same volume runs the image's code:
   a new image wins over what CCP pushed before, and the agent never runs code older than its image ships.

One database (SQLite): the service's logic runs on both in tests/deploy/test_agent_self_update.py; this test is
about the container.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from ccp import __version__
from ccp.drivers.agent_client import AgentClient
from tests.deploy import containers
from tests.deploy.agent_wheels import CANNOT_START_MARKER, build_wheel, crash_on_marked_host
from tests.e2e.conftest import unavailable
from tests.e2e.images import free_port, network_mode

KEY_ID, KEY = "k1", "container-agent-update-key-0123456789abcdef"
BROKEN, GOOD, NEWER = "0.1.2+ctr", "0.1.1+ctr", "0.1.3+ctr"
# the wheel's files over the image's site-packages: the same image with a newer agent
NEWER_DOCKERFILE = """ARG IMAGE
FROM ${IMAGE}
COPY ccp SITE/ccp
"""


@pytest.fixture(scope="module")
def agent_image() -> str:
    """The agent image, built or found up to date (.ci/run builds it before pytest)."""
    if os.environ.get("CCP_CONTAINERS_SKIP_REASON"):
        unavailable("the container images were not built", skip_env="CCP_CONTAINERS_SKIP_REASON", fix="")
    try:
        return containers.build_agent_image(log=print)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        unavailable(f"building the agent image failed: {exc}", skip_env="CCP_CONTAINERS_SKIP_REASON",
                    fix="see tests/deploy/containers.py (debootstrap, the local registry, the package index)")


@pytest.fixture
def database_url(tmp_path, sqlite_template):
    path = tmp_path / "ccp.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def _docker(*args, timeout=120, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:4])} -> exit {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


class AgentContainer:
    """The agent image run as docs/operations.md says, its state in a named volume; `start(image)` again after
    `remove()` is the operator re-creating the container (a newer image, say) on the same volume."""

    def __init__(self, tmp: Path) -> None:
        self.name = f"ccpagent-upd-{uuid.uuid4().hex[:8]}"
        self.volume = f"{self.name}-state"
        self.host_net = network_mode() == "host"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.etc, self.install_dir = tmp / "etc-ccp", tmp / "srv" / "acme"
        self.etc.mkdir()
        self.install_dir.mkdir(parents=True)
        listen = f"127.0.0.1:{self.port}" if self.host_net else "0.0.0.0:8765"
        config = self.etc / "agent.toml"
        config.write_text(f'listen = "{listen}"\nstate_dir = "/var/lib/ccp-agent"\n[keys]\n{KEY_ID} = "{KEY}"\n'
                          f'[instances.acme]\ninstall_dir = "{self.install_dir}"\n')
        config.chmod(0o600)
        self.client = AgentClient(self.url, KEY_ID, KEY.encode(), connect_timeout=2, read_timeout=10)

    def start(self, image: str) -> None:
        net = ["--network", "host"] if self.host_net else ["-p", f"127.0.0.1:{self.port}:8765"]
        _docker("run", "-d", "--name", self.name, "--init", *net, "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", f"{self.install_dir}:{self.install_dir}", "-v", f"{self.etc}:/etc/ccp:ro",
                "-v", f"{self.volume}:/var/lib/ccp-agent", image)

    def health(self, want=lambda h: True, timeout: float = 60) -> dict:
        deadline, last = time.monotonic() + timeout, "no answer"
        while time.monotonic() < deadline:
            try:
                status, body = self.client.request("GET", "/v1/health", timeout=5)
                if status == 200 and want(body):
                    return body
                last = f"{status} {body}"
            except Exception as exc:  # noqa: BLE001 - starting or restarting
                last = repr(exc)
            time.sleep(0.3)
        raise AssertionError(f"the agent container did not answer as expected within {timeout} s ({last})\n"
                             f"{self.logs()}")

    def logs(self) -> str:
        return _docker("logs", "--tail", "40", self.name, check=False).stderr[-4000:]

    def state_file(self, name: str) -> str | None:
        proc = _docker("exec", self.name, "cat", f"/var/lib/ccp-agent/_agent/{name}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def remove(self) -> None:
        _docker("rm", "-f", self.name, check=False)

    def close(self) -> None:
        self.client.close()
        self.remove()
        _docker("volume", "rm", "-f", self.volume, check=False)


def _newer_image(base: str, tmp: Path) -> str:
    """``base`` with the agent of this checkout as NEWER over its installed package (a later release's image)."""
    site = _docker("run", "--rm", "--entrypoint", "python3", base, "-c",
                   "import ccp, os; print(os.path.dirname(os.path.dirname(ccp.__file__)))").stdout.strip()
    context = tmp / "newer-image"
    with zipfile.ZipFile(build_wheel(tmp / "wheels-newer", NEWER)) as zf:
        zf.extractall(context, [n for n in zf.namelist() if n.startswith("ccp/")])
    (context / "Dockerfile").write_text(NEWER_DOCKERFILE.replace("SITE", site))
    ref = f"{containers.REGISTRY}/ccp-test/ccp-agent:newer-{uuid.uuid4().hex[:8]}"
    _docker("build", "-q", "--build-arg", f"IMAGE={base}", "-t", ref, str(context), timeout=300)
    return ref


def _update(app, db, run_worker, wheel: Path, deadline_s: int):
    from ccp.models import AgentRollout, AgentUpdate, Instance
    from ccp.services import agent_updates
    from ccp.services.scans import scan_agent, scan_row

    for inst in Instance.query.all():  # the inventory, as a scheduled scan takes it
        scan_agent(inst, scan_row(inst.id))
    db.session.commit()
    app.config["CCP"].agent_wheel = wheel
    preview = agent_updates.plan(canary=1, wave_size=1, deadline_s=deadline_s)
    rollout = agent_updates.start(actor="user:admin", canary=1, wave_size=1, deadline_s=deadline_s,
                                  expect=preview["digest"])
    run_worker()
    db.session.expire_all()
    rollout = db.session.get(AgentRollout, rollout.id)
    return rollout, AgentUpdate.query.filter_by(rollout_id=rollout.id).one()


@pytest.mark.timeout(600)  # a cold image build alone takes minutes (.ci/run builds it first)
def test_a_container_agent_updates_keeps_the_update_across_restarts_and_a_newer_image_wins(
        agent_image, app, db, run_worker, tmp_path):
    from tests.factories import make_instance

    broken = build_wheel(tmp_path / "wheels-broken", BROKEN, {"ccp/agent/cli.py": crash_on_marked_host})
    good = build_wheel(tmp_path / "wheels-good", GOOD)
    agent = AgentContainer(tmp_path)
    newer = None
    started = time.monotonic()
    try:
        (agent.etc / CANNOT_START_MARKER).write_text("")  # BROKEN exits at start on this host
        agent.start(agent_image)
        health = agent.health()
        assert health["version"] == __version__ and "agent.update" in health["capabilities"], health
        make_instance(slug="acme", agent_url=agent.url, agent_key_id=KEY_ID, agent_key=KEY)

        # 1. a version that cannot start here: restored to the image's code, the rollout halted
        rollout, item = _update(app, db, run_worker, broken, deadline_s=30)
        assert rollout.status == "halted" and item.status == "failed", item.reason
        assert item.reason == (f"the agent restored {__version__}: the new version exited with code 3 before CCP "
                               "confirmed it")
        assert f"{agent.url} the agent restored {__version__}" in rollout.error
        health = agent.health()
        assert health["version"] == __version__ and health["last_update"]["outcome"] == "restored"
        assert agent.state_file("current.json") is None  # the image's code is the current one

        # 2. a good version: its checks pass in the container, CCP confirms it, and a restart keeps it
        rollout, item = _update(app, db, run_worker, good, deadline_s=60)
        assert rollout.status == "succeeded" and item.status == "succeeded", item.reason
        assert item.reason == f"answered {GOOD} after its checks passed and was confirmed"
        health = agent.health(lambda h: (h.get("last_update") or {}).get("outcome") == "succeeded")
        assert health["version"] == GOOD
        _docker("restart", "-t", "10", agent.name, timeout=60)
        health = agent.health(lambda h: h["version"] == GOOD)
        assert health["last_update"]["target"] == GOOD and "trial" not in health
        assert f'"version": "{GOOD}"' in agent.state_file("current.json")

        # 3. the operator pulls a newer image and re-creates the container on the same volume: the image wins
        newer = _newer_image(agent_image, tmp_path)
        agent.remove()
        agent.start(newer)
        health = agent.health(lambda h: h["version"] == NEWER)
        assert agent.state_file("current.json") is None  # the pushed GOOD is no longer the current code
        assert "installed agent is now" in agent.logs()
    finally:
        agent.close()
        if newer:
            _docker("rmi", "-f", newer, check=False)
    elapsed = time.monotonic() - started
    print(f"container agent update: {elapsed:.1f} s")
    assert elapsed < 150, f"the container agent update took {elapsed:.0f} s"
