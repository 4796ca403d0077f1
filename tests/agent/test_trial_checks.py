"""A new agent version's own checks gate its confirm (issue #15): the version on trial runs ccp.agent.checks'
trial_findings before it serves, reports them in /v1/health's ``trial`` block, accepts a confirm only once they
passed, and exits when one fails -- its launcher then restores the old code at once, naming the check. CCP confirms
a version that reports ``agent.update.checks`` only when its trial says passed, and one of an older protocol on its
version alone. Also: the agent never runs pushed code older than its installed package (a container's image)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ccp import __version__
from ccp.agent import update as agent_update
from ccp.agent.checks import trial_findings
from ccp.agent.config import AgentConfig, InstanceConfig
from ccp.agent.launcher import choose
from ccp.agent.server import start_agent_in_thread
from ccp.drivers.agent_client import AgentClient
from ccp.hostops.dryrun import dry_run_command
from ccp.protocol import AGENT_UPDATE_CAPABILITY, AGENT_UPDATE_CHECKS_CAPABILITY
from tests.agent.conftest import KEY, KEY_ID, snapshot_tree
from tests.agent.test_self_update import _health, _launch, _update_body, _version_dir, _write
from tests.deploy.agent_wheels import CHECK_FAILS_MARKER, build_wheel, failing_check_on_marked_host
from tests.deploy.helpers import stop


def _config(world: Path, compose_command=None) -> AgentConfig:
    return AgentConfig(keys={KEY_ID: KEY}, instances={"acme": InstanceConfig(world / "tenant", "acme")},
                       state_dir=world / "state", compose_command=compose_command or dry_run_command()).validate()


def _on_trial(folder: Path, target: str = __version__) -> None:
    _write(folder, "pending.json", {"target": target, "path": str(folder / "versions" / target), "previous": "0.0.1",
                                    "deadline_s": 30, "deadline": time.time() + 30, "state": "started"})


# --- the checks -------------------------------------------------------------------------------------------------


def test_the_trial_checks_pass_where_the_agent_can_work(world):
    found = trial_findings(_config(world))
    assert not [f for f in found if f.level == "fail"], found
    assert any("state dir" in f.text for f in found) and any("acme:" in f.text for f in found)


def test_the_trial_checks_fail_when_compose_cannot_run(world):
    found = trial_findings(_config(world, ["/nonexistent/docker-compose"]))
    assert [f.text for f in found if f.level == "fail"] == [
        "compose cannot run (/nonexistent/docker-compose): /nonexistent/docker-compose is not installed (not found "
        "on PATH)"]


def test_run_trial_checks_does_nothing_unless_this_version_is_on_trial(world, monkeypatch):
    folder = world / "state" / "_agent"
    agent_update.run_trial_checks(_config(world, ["/nonexistent/compose"]))  # not under the launcher
    monkeypatch.setenv(agent_update.LAUNCHED_ENV, str(folder))
    agent_update.run_trial_checks(_config(world, ["/nonexistent/compose"]))  # nothing pending
    _on_trial(folder, "9.9.9")  # another version's update: this code is the old one
    agent_update.run_trial_checks(_config(world, ["/nonexistent/compose"]))
    assert not (folder / "trial.json").exists()


def test_a_version_on_trial_records_passed_checks_and_serves(world, monkeypatch):
    folder = world / "state" / "_agent"
    monkeypatch.setenv(agent_update.LAUNCHED_ENV, str(folder))
    _on_trial(folder)
    agent_update.run_trial_checks(_config(world))
    trial = json.loads((folder / "trial.json").read_text())
    assert (trial["target"], trial["checks"], trial["failed"]) == (__version__, "passed", [])
    assert any("dry-run" in w for w in trial["warnings"])


def test_a_version_whose_check_fails_records_it_and_exits_without_serving(world, monkeypatch):
    folder = world / "state" / "_agent"
    monkeypatch.setenv(agent_update.LAUNCHED_ENV, str(folder))
    _on_trial(folder)
    with pytest.raises(SystemExit) as exited:
        agent_update.run_trial_checks(_config(world, ["/nonexistent/compose"]))
    assert exited.value.code == agent_update.CHECKS_FAILED_EXIT
    trial = json.loads((folder / "trial.json").read_text())
    assert trial["checks"] == "failed" and trial["failed"][0].startswith("compose cannot run")


# --- the agent's answers: health's trial block, a confirm gated by the checks ----------------------------------


@pytest.fixture
def on_trial(world, monkeypatch):
    """An agent in a thread under the (pretend) launcher, as the version an update is trying out."""
    folder = world / "state" / "_agent"
    monkeypatch.setenv(agent_update.LAUNCHED_ENV, str(folder))
    _on_trial(folder)
    handle = start_agent_in_thread(_config(world))
    client = AgentClient(handle.url, KEY_ID, KEY, connect_timeout=2, read_timeout=20)
    yield client, folder
    client.close()
    handle.stop()


def test_a_confirm_is_refused_until_the_checks_passed(on_trial):
    client, folder = on_trial
    status, health = client.request("GET", "/v1/health")
    assert {AGENT_UPDATE_CAPABILITY, AGENT_UPDATE_CHECKS_CAPABILITY} <= set(health["capabilities"])
    assert "trial" not in health  # the checks have not run
    status, answer = client.request("POST", "/v1/agent/update/confirm", {"version": __version__})
    assert (status, answer["error"]["code"]) == (409, "checks_not_passed") and "did not run" in answer["error"][
        "message"]
    _write(folder, "trial.json", {"target": __version__, "checks": "failed", "failed": ["Docker does not answer"],
                                  "warnings": []})
    status, answer = client.request("POST", "/v1/agent/update/confirm", {"version": __version__})
    assert (status, answer["error"]["code"]) == (409, "checks_not_passed")
    assert "Docker does not answer" in answer["error"]["message"]
    assert json.loads((folder / "pending.json").read_text())["state"] == "started"

    _write(folder, "trial.json", {"target": __version__, "checks": "passed", "failed": [], "warnings": ["w"],
                                  "at": 1.0})
    status, health = client.request("GET", "/v1/health")
    assert health["trial"] == {"target": __version__, "checks": "passed", "failed": [], "warnings": ["w"]}
    assert client.request("POST", "/v1/agent/update/confirm", {"version": __version__})[0] == 200
    assert json.loads((folder / "pending.json").read_text())["state"] == "confirmed"


# --- never older than the installed package -------------------------------------------------------------------


def test_an_update_to_a_version_older_than_the_installed_one_is_refused(world, monkeypatch, tmp_path):
    folder = world / "state" / "_agent"
    monkeypatch.setenv(agent_update.LAUNCHED_ENV, str(folder))
    monkeypatch.setattr(agent_update, "exit_soon", lambda: None)
    handle = start_agent_in_thread(_config(world))
    client = AgentClient(handle.url, KEY_ID, KEY, connect_timeout=2, read_timeout=20)
    try:
        old = build_wheel(tmp_path / "old", "0.0.1")
        before = snapshot_tree(world)
        status, answer = client.request("POST", "/v1/agent/update", _update_body(old, "0.0.1"))
        assert (status, answer["error"]["code"]) == (409, "older_than_installed")
        assert snapshot_tree(world) == before
    finally:
        client.close()
        handle.stop()


def test_the_launcher_never_runs_pushed_code_older_than_the_installed_package(tmp_path):
    assert agent_update.older("0.0.9", "0.1.0") and agent_update.older("0.1", "0.1.1+x")
    assert not agent_update.older("0.1.0+hotfix", "0.1.0") and not agent_update.older("0.10.0", "0.9.9")
    pushed = _version_dir(tmp_path, "0.0.9")
    _write(tmp_path, "current.json", {"version": "0.0.9", "path": pushed, "installed": __version__})
    assert choose(tmp_path, 0).path is None and not (tmp_path / "current.json").exists()
    # an update on its way that the installed package has overtaken (a newer image pulled meanwhile)
    _write(tmp_path, "pending.json", {"target": "0.0.9", "path": pushed, "state": "staged", "deadline_s": 30})
    assert choose(tmp_path, 0).path is None
    assert "is newer than 0.0.9" in json.loads((tmp_path / "last_update.json").read_text())["reason"]


# --- the launcher as a real process: a version whose check fails is restored at once --------------------------


def test_the_launcher_restores_a_version_whose_checks_fail_at_once_naming_the_check(tmp_path):
    wheel = build_wheel(tmp_path / "wheels", "9.9.3", {"ccp/agent/checks.py": failing_check_on_marked_host})
    proc, client = _launch(tmp_path)
    (tmp_path / CHECK_FAILS_MARKER).write_text("")
    try:
        _health(client, proc)
        started = time.monotonic()
        status, _ = client.request("POST", "/v1/agent/update", _update_body(wheel, "9.9.3", deadline_s=60))
        assert status == 202
        health = _health(client, proc, lambda b: (b.get("last_update") or {}).get("target") == "9.9.3")
        assert health["version"] == __version__ and health["last_update"]["outcome"] == "restored"
        assert health["last_update"]["reason"] == (f"its checks failed: stand-in check: this version finds "
                                                   f"{CHECK_FAILS_MARKER} beside its config")
        assert time.monotonic() - started < 20  # not the 60 s deadline
        assert not (tmp_path / "state" / "_agent" / "trial.json").exists()
    finally:
        assert stop(proc) == 0


# --- CCP's side: confirm only once the checks passed; an older protocol on its version -------------------------


class FakeAgent:
    """The agent's HTTP answers, in order (the boundary CCP's job talks to); confirms are recorded."""

    def __init__(self, healths: list[dict]) -> None:
        self.healths, self.confirms = healths, []

    def request(self, method, path, json=None, timeout=None):
        if path == "/v1/agent/update/confirm":
            self.confirms.append(len(self.healths))
            return 200, {"state": "confirmed"}
        return 200, self.healths.pop(0) if len(self.healths) > 1 else self.healths[0]


@pytest.fixture
def awaiting(monkeypatch):
    from ccp.services import agent_updates

    monkeypatch.setattr(agent_updates, "POLL_S", 0)
    monkeypatch.setattr(agent_updates, "RESTART_MARGIN_S", 0)
    rollout = SimpleNamespace(target_version="2.0.0", deadline_s=1)
    return lambda agent: agent_updates._await(agent, rollout, "1.0.0", None)


def test_ccp_confirms_a_version_with_checks_only_once_its_trial_says_passed(awaiting):
    caps = [AGENT_UPDATE_CAPABILITY, AGENT_UPDATE_CHECKS_CAPABILITY]
    agent = FakeAgent([{"version": "1.0.0", "capabilities": [AGENT_UPDATE_CAPABILITY]},
                       {"version": "2.0.0", "capabilities": caps},
                       {"version": "2.0.0", "capabilities": caps, "trial": {"target": "1.9", "checks": "passed"}},
                       {"version": "2.0.0", "capabilities": caps, "trial": {"target": "2.0.0", "checks": "passed"}}])
    status, reason, seen = awaiting(agent)
    assert (status, seen) == ("succeeded", "2.0.0") and "after its checks passed" in reason
    assert agent.confirms == [1]  # only after the passed trial was read


def test_ccp_confirms_an_older_protocol_version_on_its_version_alone(awaiting):
    agent = FakeAgent([{"version": "2.0.0", "capabilities": [AGENT_UPDATE_CAPABILITY]}])
    assert awaiting(agent)[:2] == ("succeeded", "answered 2.0.0 and was confirmed")


def test_ccp_never_confirms_a_version_whose_checks_never_pass(awaiting):
    agent = FakeAgent([{"version": "2.0.0", "capabilities": [AGENT_UPDATE_CHECKS_CAPABILITY]}])
    status, reason, _ = awaiting(agent)
    assert status == "failed" and "its checks did not report passed within 1 s" in reason and not agent.confirms


def test_ccp_reports_the_failed_check_the_launcher_restored_for(awaiting):
    restored = {"target": "2.0.0", "outcome": "restored", "reason": "its checks failed: Docker does not answer"}
    agent = FakeAgent([{"version": "1.0.0", "capabilities": [AGENT_UPDATE_CAPABILITY], "last_update": restored}])
    assert awaiting(agent)[:2] == ("failed", "the agent restored 1.0.0: its checks failed: Docker does not answer")
    old_launcher = {**restored, "reason": "the new version exited with code 78 before CCP confirmed it"}
    agent = FakeAgent([{"version": "1.0.0", "capabilities": [AGENT_UPDATE_CAPABILITY], "last_update": old_launcher}])
    assert "78: its own checks failed on start" in awaiting(agent)[1]
