"""Agent updates over the API (ccp.api.agent_updates) and their waves' bookkeeping: the agents as the scans found
them, a preview and a start bound to it, refusals that change nothing, halting at an agent that cannot be reached,
cancel. The real update of real agent processes is tests/deploy/test_agent_self_update.py."""
from __future__ import annotations

import pytest

from ccp.models import AgentRollout, AgentUpdate, AuditEvent, InstanceScan
from tests.api.auth_matrix_helpers import snapshot
from tests.api.conftest import assert_error
from tests.factories import make_instance

CAPS = ["files.diff", "agent.update"]


def _agent(db, url: str, slugs: list[str], version: str | None = "0.0.9", caps=CAPS):
    for slug in slugs:
        inst = make_instance(slug=slug, agent_url=url)
        if version is not None:
            db.session.add(InstanceScan(instance_id=inst.id, drifted_files=[], image_digests={},
                                        agent_facts={"reachable": True, "version": version, "protocol": 1,
                                                     "capabilities": caps}))
    db.session.commit()


@pytest.fixture
def fleet(app, db):
    """Five agents on closed loopback ports: one serving two tenants, one already at the target, one without
    agent.update, one never scanned, two plain ones."""
    from ccp.services.agent_updates import agent_wheel

    target = agent_wheel().version
    _agent(db, "http://127.0.0.1:1", ["t-a", "t-b"])
    _agent(db, "http://127.0.0.1:2", ["t-c"])
    _agent(db, "http://127.0.0.1:3", ["t-d"])
    _agent(db, "http://127.0.0.1:4", ["t-e"], version=target)
    _agent(db, "http://127.0.0.1:5", ["t-f"], caps=["files.diff"])
    _agent(db, "http://127.0.0.1:6", ["t-g"], version=None)
    return target


def test_agents_lists_each_agent_url_once_with_its_tenants(api, make_token, fleet):
    body = api("GET", "/api/agents", make_token("read")).get_json()
    assert body["target_version"] == fleet
    rows = {a["url"]: a for a in body["items"]}
    assert rows["http://127.0.0.1:1"]["tenants"] == ["t-a", "t-b"] and rows["http://127.0.0.1:1"]["agent_update"]
    assert rows["http://127.0.0.1:5"]["agent_update"] is False and rows["http://127.0.0.1:6"]["version"] is None


def test_preview_then_start_bound_to_it_then_waves_halt_at_an_unreachable_agent(api, make_token, fleet, db,
                                                                               run_worker):
    admin = make_token("admin")
    preview = api("POST", "/api/agent-updates/preview", admin, json={"canary": 1, "waveSize": 2,
                                                                      "deadlineS": 10}).get_json()
    urls = [[a["url"] for a in w["agents"]] for w in preview["waves"]]
    assert urls == [["http://127.0.0.1:1"], ["http://127.0.0.1:2", "http://127.0.0.1:3"], ["http://127.0.0.1:6"]]
    assert [s["url"] for s in preview["skipped"]] == ["http://127.0.0.1:4"]
    assert [s["url"] for s in preview["unable"]] == ["http://127.0.0.1:5"]
    assert preview["target_version"] == fleet and len(preview["sha256"]) == 64 and preview["wheel_bytes"] > 10_000

    before = snapshot(db)
    assert_error(api("POST", "/api/agent-updates", admin, json={"canary": 1, "waveSize": 3, "expect":
                                                                preview["digest"]}), 409, "preview_stale")
    assert_error(api("POST", "/api/agent-updates", admin, json={"waveSize": 0}), 422, "validation_failed")
    assert_error(api("POST", "/api/agent-updates", admin, json={"agents": ["http://127.0.0.1:99"]}), 422)
    assert_error(api("POST", "/api/agent-updates", admin, json={"wave_size": 2}), 422, "validation_failed")
    assert_error(api("POST", "/api/agent-updates", admin, json={"expect": None}), 422, "validation_failed")
    assert snapshot(db) == before, "a refused start changed something"

    resp = api("POST", "/api/agent-updates", admin, json={"canary": 1, "waveSize": 2, "deadlineS": 10,
                                                          "expect": preview["digest"]})
    assert resp.status_code == 202, resp.get_json()
    started = resp.get_json()
    assert resp.headers["Location"].endswith(f"/api/agent-updates/{started['id']}")
    assert started["status"] == "running" and [a["status"] for a in started["agents"]] == ["waiting"] * 4
    assert_error(api("POST", "/api/agent-updates", admin, json={}), 409, "agent_update_active")

    run_worker()  # the canary's agent does not answer: the wave fails, the rollout halts, nothing else starts
    body = api("GET", f"/api/agent-updates/{started['id']}", make_token("read")).get_json()
    assert body["status"] == "halted" and body["current_wave"] == 0
    assert "http://127.0.0.1:1" in body["error"] and "did not answer" in body["error"]
    assert [a["status"] for a in body["agents"]] == ["failed", "not_started", "not_started", "not_started"]
    assert body["counts"] == {"failed": 1, "not_started": 3}
    assert AgentUpdate.query.filter_by(status="running").count() == 0
    actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
    assert actions.count("agent_update.start") == 1 and "agent_update.halted" in actions
    listed = api("GET", "/api/agent-updates", make_token("read")).get_json()["items"]
    assert [i["id"] for i in listed] == [started["id"]]


def test_cancel_stops_the_waves_not_started(api, make_token, fleet, db):
    from ccp.extensions import get_queue

    admin = make_token("admin")
    started = api("POST", "/api/agent-updates", admin, json={"canary": 1}).get_json()
    assert get_queue().count == 1  # the canary's job only
    body = api("POST", f"/api/agent-updates/{started['id']}/cancel", admin).get_json()
    assert body["status"] == "cancelled" and body["error"].startswith("cancelled by")
    assert {a["status"] for a in body["agents"][1:]} == {"not_started"}
    assert_error(api("POST", f"/api/agent-updates/{started['id']}/cancel", admin), 409)
    assert_error(api("GET", "/api/agent-updates/999999", make_token("read")), 404, "not_found")
    assert db.session.get(AgentRollout, started["id"]).finished_at is not None


def test_no_agent_to_update_is_a_clear_refusal(api, make_token, app, db):
    from ccp.services.agent_updates import agent_wheel

    _agent(db, "http://127.0.0.1:4", ["t-e"], version=agent_wheel().version)
    err = assert_error(api("POST", "/api/agent-updates", make_token("admin"), json={}), 422, "validation_failed")
    assert "no agent to update" in err["message"] and AgentRollout.query.count() == 0


def test_a_missing_agent_wheel_file_is_named(api, make_token, app, db, tmp_path):
    app.config["CCP"].agent_wheel = tmp_path / "nowhere.whl"
    err = assert_error(api("POST", "/api/agent-updates/preview", make_token("admin"), json={}), 503, "no_agent_wheel")
    assert "CCP_AGENT_WHEEL" in err["message"]


def test_housekeeping_ends_an_agent_job_whose_worker_died(app, db):
    from datetime import timedelta

    from ccp.models import utcnow
    from ccp.services.agent_updates import end_lost_jobs

    rollout = AgentRollout(target_version="9.9.9", wheel_sha256="0" * 64, status="running", deadline_s=60,
                           waves=[["http://127.0.0.1:1"], ["http://127.0.0.1:2"]])
    db.session.add(rollout)
    db.session.flush()
    db.session.add_all([
        AgentUpdate(rollout_id=rollout.id, agent_url="http://127.0.0.1:1", wave=0, status="running", slugs=[],
                    started_at=utcnow() - timedelta(minutes=30)),
        AgentUpdate(rollout_id=rollout.id, agent_url="http://127.0.0.1:2", wave=1, status="waiting", slugs=[])])
    db.session.commit()
    assert end_lost_jobs(now=utcnow() - timedelta(minutes=25)) == 0  # 5 min: not past deadline + send + margin
    assert end_lost_jobs() == 1 and end_lost_jobs() == 0
    db.session.expire_all()
    assert rollout.status == "halted" and "job was lost" in rollout.error
    assert [u.status for u in AgentUpdate.query.order_by(AgentUpdate.wave)] == ["failed", "not_started"]


def test_an_agent_whose_tenant_is_being_upgraded_is_not_sent_the_update(app, db, monkeypatch, tmp_path):
    from ccp.agent import update as agent_side
    from ccp.agent.config import AgentConfig, InstanceConfig
    from ccp.agent.server import start_agent_in_thread
    from ccp.models import Upgrade
    from ccp.services import agent_updates

    key = "busy-agent-key-0123456789abcdef0123"
    monkeypatch.setattr(agent_updates, "BUSY_RETRY_S", 0.05)
    monkeypatch.setenv(agent_side.LAUNCHED_ENV, str(tmp_path / "state" / "_agent"))  # as under its launcher
    monkeypatch.setattr(agent_side, "exit_soon", lambda: None)
    (tmp_path / "busy-1").mkdir()
    agent = start_agent_in_thread(AgentConfig(keys={"k1": key.encode()}, state_dir=tmp_path / "state",
                                              instances={"busy-1": InstanceConfig(tmp_path / "busy-1", "b")}))
    try:
        inst = make_instance(slug="busy-1", agent_url=agent.url, agent_key_id="k1", agent_key=key)
        db.session.add(Upgrade(instance_id=inst.id, kind="quick", status="running", actor="test"))
        db.session.commit()
        from tests.deploy.agent_wheels import build_wheel

        app.config["CCP"].agent_wheel = build_wheel(tmp_path / "wheels", "9.9.9")
        wheel = agent_updates.agent_wheel()
        rollout = AgentRollout(target_version="9.9.9", deadline_s=1, waves=[[agent.url]], wheel_sha256=wheel.sha256)
        status, reason, answered = agent_updates._update_agent(agent.url, rollout)
    finally:
        agent.stop()
    assert status == "failed" and "being upgraded" in reason and answered == agent_updates.ccp.__version__
    assert not (tmp_path / "state" / "_agent" / "pending.json").exists()
