"""The agent's self-update (ccp.agent.update, ccp.agent.launcher): refusals that change nothing, and the launcher's
choice of code -- the new version once confirmed, the previous one when the new one crashes at start or is not
confirmed before its deadline. The launcher runs as a real process here; tests/deploy/test_agent_self_update.py
runs whole updates through CCP."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccp import __version__
from ccp.agent import update as agent_update
from ccp.agent.config import AgentConfig, InstanceConfig
from ccp.agent.launcher import choose
from ccp.agent.server import start_agent_in_thread
from ccp.drivers.agent_client import AgentClient
from ccp.hostops.dryrun import dry_run_command
from tests.agent.conftest import KEY, KEY_ID, snapshot_tree
from tests.deploy.agent_wheels import build_wheel
from tests.deploy.helpers import free_port, stop

SECRET = KEY.decode()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """The agent wheel of this checkout as 9.9.1, and one whose ccp/agent/__main__.py exits with 3 at once."""
    dest = tmp_path_factory.mktemp("wheels")
    return {"good": build_wheel(dest, "9.9.1"),
            "crash": build_wheel(dest / "crash", "9.9.2", {"ccp/agent/__main__.py": lambda t: "raise SystemExit(3)\n"})}


def _update_body(wheel: Path, version: str, **over) -> dict:
    data = wheel.read_bytes()
    return {"version": version, "sha256": hashlib.sha256(data).hexdigest(), "wheel": base64.b64encode(data).decode(),
            "deadline_s": 30, **over}


@pytest.fixture
def launched(world, monkeypatch):
    """An agent in a thread that believes it runs under the launcher (update folder = state/_agent); staging an
    update does not stop the test process."""
    folder = world / "state" / "_agent"
    monkeypatch.setenv(agent_update.LAUNCHED_ENV, str(folder))
    exits = []
    monkeypatch.setattr(agent_update, "exit_soon", lambda: exits.append(True))
    config = AgentConfig(keys={KEY_ID: KEY}, instances={"acme": InstanceConfig(world / "tenant", "acme")},
                         state_dir=world / "state").validate()
    handle = start_agent_in_thread(config, "127.0.0.1", 0)
    client = AgentClient(handle.url, KEY_ID, KEY, connect_timeout=2, read_timeout=20)
    yield client, folder, exits
    client.close()
    handle.stop()


def test_an_agent_not_under_the_launcher_has_no_update_capability_nor_endpoint(client):
    status, health = client.request("GET", "/v1/health")
    assert "agent.update" not in health["capabilities"] and "last_update" not in health
    status, _ = client.request("POST", "/v1/agent/update", {"version": "9.9.1"})
    assert status == 404


def test_refusals_change_nothing(launched, wheels, world):
    client, folder, exits = launched
    status, health = client.request("GET", "/v1/health")
    assert "agent.update" in health["capabilities"]
    before = snapshot_tree(world)
    good = _update_body(wheels["good"], "9.9.1")
    cases = [
        ({**good, "sha256": "0" * 64}, 422, "sha256_mismatch"),
        ({**good, "sha256": "not-hex"}, 400, "bad_request"),
        (_update_body(wheels["good"], __version__), 409, "same_version"),
        ({**good, "wheel": "%%%not base64%%%"}, 400, "bad_request"),
        ({**good, "version": "../../etc"}, 400, "bad_request"),
        ({**good, "deadline_s": 10_000}, 400, "bad_request"),
        (_update_body(wheels["good"], "9.9.7"), 422, "version_mismatch"),  # the wheel says 9.9.1
        ({"version": "9.9.1"}, 400, "bad_request"),
    ]
    for body, want_status, want_code in cases:
        status, answer = client.request("POST", "/v1/agent/update", body)
        assert (status, answer["error"]["code"]) == (want_status, want_code), (body.get("version"), answer)
    status, answer = client.request("POST", "/v1/agent/update", [1, 2])
    assert status == 400
    not_zip = b"not a zip"
    status, answer = client.request("POST", "/v1/agent/update", {
        **good, "wheel": base64.b64encode(not_zip).decode(), "sha256": hashlib.sha256(not_zip).hexdigest()})
    assert (status, answer["error"]["code"]) == (422, "bad_wheel")
    status, answer = client.request("POST", "/v1/agent/update/confirm", {"version": "9.9.1"})
    assert (status, answer["error"]["code"]) == (409, "not_running")
    assert snapshot_tree(world) == before and not exits


def test_an_unsigned_update_is_401_and_changes_nothing(launched, wheels, world):
    import requests

    client, folder, exits = launched
    before = snapshot_tree(world)
    resp = requests.post(client.base_url + "/v1/agent/update", json=_update_body(wheels["good"], "9.9.1"), timeout=10)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    assert snapshot_tree(world) == before and not exits


def test_a_wheel_with_a_file_outside_the_package_is_refused(launched, tmp_path):
    import zipfile

    client, folder, _ = launched
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ccp_agent-9.9.1.dist-info/METADATA", "Name: ccp-agent\nVersion: 9.9.1\n")
        zf.writestr("../evil.py", "x = 1\n")
    status, answer = client.request("POST", "/v1/agent/update", _update_body(bad, "9.9.1"))
    assert (status, answer["error"]["code"]) == (422, "bad_wheel") and "outside" in answer["error"]["message"]
    assert not (folder / "versions" / "9.9.1").exists() and not (tmp_path.parent / "evil.py").exists()


def test_a_good_update_is_staged_and_a_second_one_is_refused_while_it_is_on_its_way(launched, wheels):
    client, folder, exits = launched
    status, answer = client.request("POST", "/v1/agent/update", _update_body(wheels["good"], "9.9.1"))
    assert status == 202 and answer["state"] == "staged"
    deadline = time.monotonic() + 5
    while not exits and time.monotonic() < deadline:  # asked to exit once the answer went out
        time.sleep(0.05)
    assert exits == [True]
    pending = json.loads((folder / "pending.json").read_text())
    assert pending["target"] == "9.9.1" and pending["previous"] == __version__ and pending["previous_path"] is None
    assert (Path(pending["path"]) / "ccp" / "agent" / "launcher.py").is_file()
    assert 'version__ = "9.9.1"' in (Path(pending["path"]) / "ccp" / "__init__.py").read_text()
    status, answer = client.request("POST", "/v1/agent/update", _update_body(wheels["crash"], "9.9.2"))
    assert (status, answer["error"]["code"]) == (409, "update_in_progress")
    assert not (folder / "versions" / "9.9.2").exists()


# --- the launcher's choice --------------------------------------------------------------------------------------


def _write(folder: Path, name: str, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def _version_dir(folder: Path, version: str) -> str:
    path = folder / "versions" / version / "ccp" / "agent"
    path.mkdir(parents=True)
    (path / "cli.py").write_text("")
    return str(path.parents[1])


def test_choose_without_anything_runs_the_installed_package(tmp_path):
    start = choose(tmp_path, time.time())
    assert (start.path, start.on_trial) == (None, False)


def test_choose_starts_a_staged_update_on_trial_with_its_deadline(tmp_path):
    path = _version_dir(tmp_path, "2")
    _write(tmp_path, "pending.json", {"target": "2", "path": path, "previous": "1", "previous_path": None,
                                      "deadline_s": 30, "state": "staged"})
    start = choose(tmp_path, 1000.0)
    assert (start.version, start.path, start.deadline) == ("2", path, 1030.0)
    assert json.loads((tmp_path / "pending.json").read_text())["state"] == "started"
    again = choose(tmp_path, 1010.0)  # the launcher itself restarted within the deadline: the trial goes on
    assert (again.version, again.deadline) == ("2", 1030.0)


def test_choose_restores_the_previous_code_once_the_deadline_passed(tmp_path):
    old = _version_dir(tmp_path, "1")
    _write(tmp_path, "current.json", {"version": "1", "path": old, "installed": __version__})
    _write(tmp_path, "pending.json", {"target": "2", "path": _version_dir(tmp_path, "2"), "previous": "1",
                                      "deadline_s": 30, "deadline": 1030.0, "state": "started"})
    start = choose(tmp_path, 1031.0)
    assert (start.version, start.path, start.on_trial) == ("1", old, False)
    last = json.loads((tmp_path / "last_update.json").read_text())
    assert last["outcome"] == "restored" and last["target"] == "2" and "not confirmed" in last["reason"]
    assert not (tmp_path / "pending.json").exists()


def test_choose_makes_a_confirmed_update_current(tmp_path):
    path = _version_dir(tmp_path, "2")
    _write(tmp_path, "pending.json", {"target": "2", "path": path, "previous": "1", "deadline_s": 30,
                                      "deadline": 1030.0, "state": "confirmed"})
    start = choose(tmp_path, 2000.0)  # confirmed counts even after the deadline
    assert (start.version, start.path, start.on_trial) == ("2", path, False)
    assert json.loads((tmp_path / "current.json").read_text())["version"] == "2"
    assert json.loads((tmp_path / "last_update.json").read_text())["outcome"] == "succeeded"


def test_an_agent_installed_by_hand_since_wins_over_the_version_ccp_pushed(tmp_path):
    pushed = _version_dir(tmp_path, "2")
    _write(tmp_path, "current.json", {"version": "2", "path": pushed, "installed": __version__})
    assert choose(tmp_path, 0).path == pushed
    _write(tmp_path, "current.json", {"version": "2", "path": pushed, "installed": "0.0.1"})  # pip install -U since
    assert choose(tmp_path, 0).path is None and not (tmp_path / "current.json").exists()


def test_choose_restores_when_the_new_code_is_missing(tmp_path):
    _write(tmp_path, "pending.json", {"target": "2", "path": str(tmp_path / "gone"), "state": "staged",
                                      "deadline_s": 30})
    assert choose(tmp_path, 0).path is None
    assert "missing" in json.loads((tmp_path / "last_update.json").read_text())["reason"]


# --- the launcher as a real process -----------------------------------------------------------------------------


def _launch(tmp_path: Path):
    (tmp_path / "srv" / "acme").mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = tmp_path / "agent.toml"
    compose = f"{dry_run_command()!r}".replace("'", '"')  # a new version's checks need a compose that answers
    config.write_text(f'listen = "127.0.0.1:{port}"\nstate_dir = "{tmp_path / "state"}"\n'
                      f'compose_command = {compose}\n[keys]\n'
                      f'{KEY_ID} = "{SECRET}"\n[instances.acme]\ninstall_dir = "{tmp_path / "srv" / "acme"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCP_AGENT_")}
    proc = subprocess.Popen([sys.executable, "-m", "ccp.agent", "--config", str(config)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, AgentClient(f"http://127.0.0.1:{port}", KEY_ID, KEY, connect_timeout=1, read_timeout=20)


def _health(client: AgentClient, proc, want=None, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            status, body = client.request("GET", "/v1/health")
            if status == 200 and (want is None or want(body)):
                return body
        except Exception:  # noqa: BLE001 - restarting
            pass
        time.sleep(0.2)
    raise AssertionError("the agent did not answer as expected in time")


def test_the_launcher_runs_a_confirmed_update_and_restores_one_that_crashes_at_start(tmp_path, wheels):
    proc, client = _launch(tmp_path)
    try:
        health = _health(client, proc)
        assert health["version"] == __version__ and "agent.update" in health["capabilities"]
        status, _ = client.request("POST", "/v1/agent/update", _update_body(wheels["good"], "9.9.1"))
        assert status == 202
        health = _health(client, proc, lambda b: b["version"] == "9.9.1")
        assert client.request("POST", "/v1/agent/update/confirm", {"version": "9.9.1"})[0] == 200
        health = _health(client, proc, lambda b: (b.get("last_update") or {}).get("outcome") == "succeeded")
        assert health["version"] == "9.9.1"
        # the confirmed version now runs the next update; this one exits with 3 at once: back to 9.9.1
        status, _ = client.request("POST", "/v1/agent/update", _update_body(wheels["crash"], "9.9.2"))
        assert status == 202
        health = _health(client, proc, lambda b: (b.get("last_update") or {}).get("target") == "9.9.2")
        assert health["version"] == "9.9.1"
        assert health["last_update"]["outcome"] == "restored"
        assert "exited with code 3" in health["last_update"]["reason"]
    finally:
        assert stop(proc) == 0
    assert SECRET not in proc.stderr.read()


def test_the_launcher_restores_an_update_not_confirmed_before_its_deadline(tmp_path, wheels):
    proc, client = _launch(tmp_path)
    try:
        _health(client, proc)
        started = time.monotonic()
        status, _ = client.request("POST", "/v1/agent/update", _update_body(wheels["good"], "9.9.1", deadline_s=5))
        assert status == 202
        _health(client, proc, lambda b: b["version"] == "9.9.1")  # it came back, but nobody confirms it
        health = _health(client, proc, lambda b: (b.get("last_update") or {}).get("outcome") == "restored")
        assert health["version"] == __version__ and "not confirmed by CCP within 5" in health["last_update"]["reason"]
        assert time.monotonic() - started < 15
        status, answer = client.request("POST", "/v1/agent/update/confirm", {"version": "9.9.1"})
        assert status == 409  # too late: the old code answers
    finally:
        assert stop(proc) == 0


def test_killing_the_launcher_takes_its_agent_with_it(tmp_path):
    proc, client = _launch(tmp_path)
    _health(client, proc)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.request("GET", "/v1/health")
        except Exception:  # noqa: BLE001 - gone, as it should be
            return
        time.sleep(0.2)
    raise AssertionError("the agent child outlived its launcher")


def test_an_update_waits_for_the_operations_in_flight_and_then_holds_new_ones(launched, wheels, world):
    import threading

    client, folder, exits = launched
    script = world / "tenant" / "scripts" / "upgrade.sh"
    script.parent.mkdir()
    script.write_text("sleep 2\n")
    results = []
    running = threading.Thread(target=lambda: results.append(
        AgentClient(client.base_url, KEY_ID, KEY, read_timeout=20).request(
            "POST", "/v1/instances/acme/scripts/upgrade", {"deadline_s": 20})))
    running.start()
    time.sleep(0.7)
    status, answer = client.request("POST", "/v1/agent/update", _update_body(wheels["good"], "9.9.1"))
    assert (status, answer["error"]["code"]) == (409, "busy") and not (folder / "pending.json").exists()
    running.join(timeout=20)
    assert results[0][0] == 200  # the tenant's script ran to its end
    status, _ = client.request("POST", "/v1/agent/update", _update_body(wheels["good"], "9.9.1"))
    assert status == 202
    status, answer = client.request("POST", "/v1/instances/acme/compose/ps", {"deadline_s": 5})
    assert (status, answer["error"]["code"]) == (503, "restarting")  # until the new code answers
    assert client.request("GET", "/v1/health")[0] == 200
