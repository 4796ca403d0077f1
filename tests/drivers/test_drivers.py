"""One suite, both drivers: the LocalDriver (in-process hostops) and the RemoteDriver (signed HTTP to a real agent)
must behave identically, including their errors."""

from __future__ import annotations

import hashlib

import pytest

from ccp.config import Settings
from ccp.drivers import AgentRejected, AgentUnreachable, FileDiff
from ccp.drivers.local import LocalDriver
from ccp.drivers.remote import RemoteDriver
from ccp.hostops.tenant import TenantHost
from tests.tenants import FAKE_COMPOSE, start_agent

COMPOSE = "services:\n  web:\n    image: example/web:${IMAGE_TAG:-latest}\n"


@pytest.fixture(params=["local", "remote"])
def host(request, tmp_path):
    """(driver, install_dir) for a small tenant."""
    install = tmp_path / "tenant"
    install.mkdir()
    (install / "docker-compose.yml").write_text(COMPOSE)
    (install / ".env").write_text("# keep me\nIMAGE_TAG=v1\nDB_PASSWORD=hunter2-secret\n")
    if request.param == "local":
        yield LocalDriver(TenantHost(install, "proj", compose_command=FAKE_COMPOSE)), install
        return
    agent = start_agent(tmp_path / "agent-state", {"t1": install}, "proj")
    from ccp.drivers.agent_client import AgentClient

    client = AgentClient(agent.url, agent.key_id, agent.key.encode(), connect_timeout=2, read_timeout=30)
    yield RemoteDriver(client, "t1"), install
    agent.stop()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_health_lists_capabilities(host):
    driver, _ = host
    health = driver.health()
    assert {"files.diff", "files.write", "env.patch", "compose.up"} <= set(health["capabilities"])


def test_diff_statuses_and_env_masking(host):
    driver, _ = host
    result = driver.diff_files({"docker-compose.yml": COMPOSE, "new.conf": "x\n",
                                ".env": "# keep me\nIMAGE_TAG=v2\nDB_PASSWORD=hunter2-secret\n"})
    assert all(isinstance(entry, FileDiff) and entry.path == path for path, entry in result.items())
    assert result["docker-compose.yml"].status == "unchanged" and not result["docker-compose.yml"].changed
    assert result["docker-compose.yml"].old_sha256 == result["docker-compose.yml"].new_sha256 == _sha(COMPOSE)
    assert result["new.conf"].status == "created" and result["new.conf"].old_sha256 is None
    assert (result["new.conf"].added, result["new.conf"].removed) == (1, 0)
    assert result[".env"].status == "modified" and not result[".env"].truncated
    assert "hunter2" not in result[".env"].diff and "IMAGE_TAG" in result[".env"].diff


def test_env_table_and_managed_values(host):
    driver, _ = host
    env = "# keep me\nIMAGE_TAG=v2\nDB_PASSWORD=changed-secret\nSITE=shop\n"
    table = driver.diff_files({".env": env}, env_secret_keys=("SITE",))[".env"].env
    assert [(c.key, c.change, c.secret, c.old, c.new) for c in table] == [
        ("IMAGE_TAG", "changed", False, "v1", "v2"), ("DB_PASSWORD", "changed", True, None, None),
        ("SITE", "added", True, None, None)]
    assert driver.diff_files({"docker-compose.yml": COMPOSE})["docker-compose.yml"].env is None
    assert driver.env_keys(("IMAGE_TAG", "DB_PASSWORD"))["values"] == {"IMAGE_TAG": "v1"}
    with pytest.raises(AgentRejected) as err:
        driver.env_keys(("NOT A NAME",))
    assert err.value.status == 400


def test_write_restore_roundtrip(host):
    driver, install = host
    out = driver.write_files({"docker-compose.yml": {"content": COMPOSE + "# v2\n", "expect_sha256": _sha(COMPOSE)},
                              "extra/new.conf": {"content": "new\n", "expect_sha256": None}}, fence=1)
    assert (install / "extra" / "new.conf").read_text() == "new\n"
    driver.restore_snapshot(out["snapshot_id"], fence=1)
    assert (install / "docker-compose.yml").read_text() == COMPOSE
    assert not (install / "extra" / "new.conf").exists()


def test_expectation_failure_writes_nothing(host):
    driver, install = host
    with pytest.raises(AgentRejected) as err:
        driver.write_files({"a.conf": {"content": "a\n", "expect_sha256": None},
                            "docker-compose.yml": {"content": "changed\n", "expect_sha256": "0" * 64}}, fence=1)
    assert err.value.status == 409
    assert not (install / "a.conf").exists() and (install / "docker-compose.yml").read_text() == COMPOSE


def test_stale_fence_rejected(host):
    driver, install = host
    driver.env_patch({"IMAGE_TAG": "v2"}, fence=5)
    with pytest.raises(AgentRejected) as err:
        driver.env_patch({"IMAGE_TAG": "v3"}, fence=4)
    assert err.value.status == 409 and err.value.code == "fence_rejected"
    assert "IMAGE_TAG=v2\n" in (install / ".env").read_text()


def test_env_keys_and_patch_keep_other_lines(host):
    driver, install = host
    assert driver.env_keys()["keys"] == ["IMAGE_TAG", "DB_PASSWORD"]
    result = driver.env_patch({"IMAGE_TAG": "v2", "NEW_KEY": "1"}, fence=1)
    assert result["changed"] == ["IMAGE_TAG"] and result["appended"] == ["NEW_KEY"]
    assert (install / ".env").read_text() == "# keep me\nIMAGE_TAG=v2\nDB_PASSWORD=hunter2-secret\nNEW_KEY=1\n"


def test_path_escape_refused(host):
    driver, _ = host
    with pytest.raises(AgentRejected) as err:
        driver.diff_files({"../outside.txt": "x"})
    assert err.value.status == 400


def test_compose_up_and_ps(host):
    driver, _ = host
    assert driver.compose("up", 20)["ok"]
    services = driver.compose("ps", 20)["services"]
    assert [(s["name"], s["state"]) for s in services] == [("web", "running")]


def test_unreachable_agent_is_typed(tmp_path):
    driver = RemoteDriver.for_instance(_FakeInstance(), Settings())
    with pytest.raises(AgentUnreachable) as err:
        driver.health()
    assert "127.0.0.1:9" in str(err.value)


class _FakeInstance:
    slug = "gone"
    agent_url = "http://127.0.0.1:9"
    agent_key_id = "k"

    def agent_key(self) -> str:
        return "a-key-that-is-long-enough"
