"""Release intake end to end on the real Docker tier: a second docker-registry, configured with the
`notifications:` endpoint docs/webhooks.md gives (taken from the doc itself), notifies CCP - served on a real
socket - of every push. Pushing a new tag starts a rollout that upgrades two real tenants (behind their agents) to
it, with the digest the registry reported; pushing an older tag afterwards starts nothing (a downgrade).

The registry is this test's own (its own port and storage, stopped at the end), so the shared one on
127.0.0.1:5055 is left alone. SQLite only: the database side runs on both in tests/api/test_hooks.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ccp.extensions import db
from ccp.intake.registry import ImageRef, RegistryClient
from ccp.models import Instance, Rollout, Upgrade, WebhookDelivery
from ccp.services.instances import create_instance
from ccp.services.receivers import create_receiver
from tests.e2e import images
from tests.e2e import upgrade_helpers as uh

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
REPOSITORY = "ccp-intake/web"


def _notifications_block(url: str, secret: str) -> str:
    """The `notifications:` YAML of docs/webhooks.md, pointed at this test's CCP."""
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S) if "notifications:" in b)
    return block.replace("https://ccp.example.com/api/hooks/<name>", url).replace("<secret>", secret)


@pytest.fixture
def notifying_registry(tmp_path):
    """start(url, secret) -> host:port of a docker-registry notifying `url` with `secret`; stopped at teardown,
    its images removed from the engine."""
    procs, hosts = [], []

    def start(url: str, secret: str) -> str:
        port = uh.free_port()
        config = tmp_path / "registry.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
                          f"{tmp_path / 'registry-data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
                          + _notifications_block(url, secret))
        log = open(tmp_path / "registry.log", "wb")
        procs.append((subprocess.Popen([shutil.which("docker-registry"), "serve", str(config)], stdout=log,
                                       stderr=subprocess.STDOUT), log))
        host = f"127.0.0.1:{port}"
        hosts.append(host)
        deadline = time.monotonic() + 10
        while not _up(host) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _up(host), (tmp_path / "registry.log").read_text()[-2000:]
        return host

    yield start
    for proc, log in procs:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    for host in hosts:
        for tag in ("v1", "v2", "v3"):
            subprocess.run(["docker", "rmi", "-f", f"{host}/{REPOSITORY}:{tag}"], capture_output=True, timeout=60)


@pytest.fixture
def tenants_on(app, tmp_path):
    """tenants_on(image_repo, n) -> [(RealTenant, Instance)] at v1 from `image_repo`, up and healthy; compose down
    and agents stopped at teardown."""
    made: list[uh.RealTenant] = []

    def make(image_repo: str, n: int):
        out = []
        for _ in range(n):
            t = uh.make_real_tenant(tmp_path, extra_vars={"IMAGE_REPO": image_repo})
            made.append(t)
            out.append((t, create_instance(uh.instance_data(t), actor="test")))
            t.up()
        for t, _ in out:
            uh.wait_healthy(t.install_dir, t.project)
            uh.wait_page(t.url, "v1")
        return out

    yield make
    for t in made:
        t.agent.stop()
    images.down_all(made, "tenants_on")


def _up(host: str) -> bool:
    try:
        return images.http_get(f"http://{host}/v2/", timeout=1)[0] == 200
    except OSError:
        return False


def _push(host: str, tag: str) -> str:
    images.build_image(f"{host}/{REPOSITORY}:{tag}", "web", tag, push=True)
    return RegistryClient(ImageRef.parse(f"{host}/{REPOSITORY}")).digest(tag)


def _wait_for_delivery(tag: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if db.session.execute(select(func.count(WebhookDelivery.id)).where(WebhookDelivery.tag == tag)).scalar():
            return
        time.sleep(0.2)
    raise AssertionError(f"no notification of {tag} reached CCP within {timeout}s")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pushing_a_tag_rolls_it_out_and_an_older_tag_does_not(app, tenants_on, run_worker, notifying_registry):
    from werkzeug.serving import make_server

    app.config["CCP"].receiver_window_s = 1  # coalesce each push's events, quickly
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        receiver, secret = create_receiver({"name": "registry", "kind": "distribution", "semver_range": ">=1",
                                            "image": "127.0.0.1:1/" + REPOSITORY}, actor="test")
        host = notifying_registry(f"http://127.0.0.1:{server.port}/api/hooks/registry", secret)
        receiver.image = f"{host}/{REPOSITORY}"
        db.session.commit()
        _push(host, "v1")  # what the tenants start on (web and sidecar)
        _wait_for_delivery("v1")
        tenants = tenants_on(f"{host}/{REPOSITORY}", 2)
        run_worker()  # v1 is what they run: nothing to do
        assert db.session.execute(select(func.count(Rollout.id))).scalar() == 0

        digest = _push(host, "v3")
        _wait_for_delivery("v3")
        run_worker()  # the decision (after the window), the rollout's waves, each tenant's upgrade
        db.session.expire_all()
        started = db.session.execute(select(WebhookDelivery).where(WebhookDelivery.tag == "v3")).scalars().all()
        assert {d.decision for d in started} == {"started"}, [d.reason for d in started]
        rollout = db.session.get(Rollout, started[0].rollout_id)
        assert (rollout.tag, rollout.status, rollout.image_digest) == ("v3", "succeeded", digest), rollout.error
        assert rollout.actor == "webhook:registry"
        ups = db.session.execute(select(Upgrade).where(Upgrade.rollout_id == rollout.id)).scalars().all()
        assert len(ups) == 2 and {u.image_digest for u in ups} == {digest}
        for t, inst in tenants:
            assert uh.page_version(t.url) == "v3" and db.session.get(Instance, inst.id).image_tag == "v3"

        _push(host, "v2")  # an older release pushed later: never a downgrade
        _wait_for_delivery("v2")
        run_worker()
        db.session.expire_all()
        older = db.session.execute(select(WebhookDelivery).where(WebhookDelivery.tag == "v2")).scalars().all()
        assert {d.decision for d in older} == {"ignored"}
        assert older[0].reason.startswith("downgrade: v2 is older than v3"), older[0].reason
        assert db.session.execute(select(func.count(Rollout.id))).scalar() == 1
        for t, _ in tenants:
            assert uh.page_version(t.url) == "v3"
        everything = db.session.execute(select(WebhookDelivery)).scalars().all()
        assert not [d.reason for d in everything if "pull" in (d.reason or "")]  # the docs' `ignore: [pull]` works
        assert {d.decision for d in everything} <= {"started", "ignored"} and len(everything) >= 3
    finally:
        server.shutdown()
