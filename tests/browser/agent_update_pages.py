"""The Agent updates pages for the browser walk (tests/browser/test_ui_layout.py): the agents with a preview of the
waves, and an agent update that halted (one agent updated, one restored with its reason, one never started)."""
from __future__ import annotations

from datetime import timedelta


def agent_update_pages(walk, base, db) -> None:
    from ccp.models import AgentRollout, AgentUpdate, InstanceScan, utcnow
    from tests.factories import make_instance

    now = utcnow()
    facts = {"reachable": True, "version": "0.0.9", "protocol": 1,
             "capabilities": ["files.diff", "files.write", "compose.up", "agent.update"]}
    for url, slugs in (("http://10.20.0.11:8765", ["umbrella", "umbrella-staging"]),
                       ("http://10.20.0.12:8765", ["vandelay"]), ("http://10.20.0.13:8765", ["wayne"]),
                       ("http://agent-with-a-long-host-name.tenants.example.test:8765", ["initrode"])):
        for slug in slugs:
            inst = make_instance(slug=slug, agent_url=url)
            db.session.add(InstanceScan(instance_id=inst.id, drifted_files=[], image_digests={}, agent_at=now,
                                        agent_facts=facts if slug != "wayne" else {**facts, "capabilities": []}))
    rollout = AgentRollout(target_version="0.1.1", wheel_sha256="ab" * 32, status="halted", deadline_s=120,
                           waves=[["http://10.20.0.11:8765"], ["http://10.20.0.12:8765"],
                                  ["http://agent-with-a-long-host-name.tenants.example.test:8765"]],
                           current_wave=1, actor="user:ada", source="ui", created_at=now - timedelta(minutes=3),
                           finished_at=now, error="wave 2: http://10.20.0.12:8765 the agent restored 0.1.0: the new "
                                                  "version exited with code 1 before CCP confirmed it")
    db.session.add(rollout)
    db.session.flush()
    db.session.add_all([
        AgentUpdate(rollout_id=rollout.id, agent_url="http://10.20.0.11:8765", slugs=["umbrella", "umbrella-staging"],
                    wave=0, status="succeeded", from_version="0.1.0", to_version="0.1.1",
                    reason="answered 0.1.1 and was confirmed"),
        AgentUpdate(rollout_id=rollout.id, agent_url="http://10.20.0.12:8765", slugs=["vandelay"], wave=1,
                    status="failed", from_version="0.1.0", to_version="0.1.0",
                    reason="the agent restored 0.1.0: the new version exited with code 1 before CCP confirmed it"),
        AgentUpdate(rollout_id=rollout.id, agent_url="http://agent-with-a-long-host-name.tenants.example.test:8765",
                    slugs=["initrode"], wave=2, status="not_started", from_version="0.1.0",
                    reason="the agent update halted before its wave")])
    db.session.commit()
    page = walk.page
    page.goto(base + "/admin/agents")
    page.fill("#au-wave_size", "2")
    page.click("button:has-text('Preview waves')")
    page.wait_for_selector("#agent-update-preview")
    walk.look("agent-updates")
    walk.visit("agent-update", base + f"/admin/agents/updates/{rollout.id}")
