"""Agent updates that ended are told like rollouts (rollout.halted / rollout.finished), batched with them, naming
the agents that did not come back and never the agent's own words."""
from __future__ import annotations

from ccp.models import AgentRollout, AgentUpdate, utcnow
from ccp.services.notify import collect_ended, create_channel
from tests.tenants import CANARY


def test_a_halted_agent_update_is_told_to_channels_that_want_rollout_halted(app, db, run_worker, http_receiver):
    channel = create_channel("ops", http_receiver.url, ["rollout.halted"], actor="test")
    quiet = create_channel("finished-only", http_receiver.url.replace("/hook", "/other"), ["rollout.finished"],
                           actor="test")
    for c in (channel, quiet):
        c.events_since = utcnow().replace(year=2020)
    now = utcnow()
    halted = AgentRollout(target_version="0.1.1", wheel_sha256="a" * 64, status="halted", waves=[["u"]],
                          finished_at=now, error=f"the agent said {CANARY}")
    running = AgentRollout(target_version="0.1.2", wheel_sha256="b" * 64, status="cancelled", waves=[["u"]])
    db.session.add_all([halted, running])
    db.session.flush()
    db.session.add_all([
        AgentUpdate(rollout_id=halted.id, agent_url="http://10.0.0.7:8765", wave=0, status="failed", slugs=[],
                    reason=f"the agent restored 0.1.0: {CANARY}"),
        AgentUpdate(rollout_id=halted.id, agent_url="http://10.0.0.8:8765", wave=0, status="succeeded", slugs=[])])
    db.session.commit()
    assert collect_ended() == 1  # the finished-only channel has nothing (the cancelled one has no finished_at)
    run_worker()
    assert len(http_receiver.posts) == 1
    message = http_receiver.posts[0]["body"]["message"]
    assert f"Agent update #{halted.id} to 0.1.1: halted; 1 agent(s) did not come back on it: " \
           "http://10.0.0.7:8765" in message
    assert "10.0.0.8" not in message and CANARY not in http_receiver.posts[0]["raw"]
