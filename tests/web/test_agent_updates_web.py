"""The Agent updates page (admins): agents as scanned, preview then start bound to it, progress polled until it ends,
cancel; others get 403 and change nothing."""
from __future__ import annotations

from ccp.models import AgentRollout, AuditEvent, InstanceScan
from tests.factories import make_instance
from tests.web.conftest import HX


def _fleet(db):
    for url, slugs, caps in (("http://127.0.0.1:1", ["w-a", "w-b"], ["agent.update"]),
                             ("http://127.0.0.1:2", ["w-c"], ["agent.update"]),
                             ("http://127.0.0.1:3", ["w-d"], ["files.diff"])):
        for slug in slugs:
            inst = make_instance(slug=slug, agent_url=url)
            db.session.add(InstanceScan(instance_id=inst.id, drifted_files=[], image_digests={},
                                        agent_facts={"reachable": True, "version": "0.0.9", "protocol": 1,
                                                     "capabilities": caps}))
    db.session.commit()


def test_only_admins_see_the_page_and_its_actions(client, login, post, db):
    _fleet(db)
    login("operator")
    assert client.get("/admin/agents").status_code == 403
    assert post("/admin/agents/updates", {"canary": "1"}, token_from="/rollouts").status_code == 403
    assert AgentRollout.query.count() == 0


def test_preview_start_progress_and_cancel(client, login, post, db, app):
    from ccp.services.agent_updates import agent_wheel

    _fleet(db)
    login("admin")
    page = client.get("/admin/agents").get_data(as_text=True)
    target = agent_wheel().version
    assert "http://127.0.0.1:1" in page and "w-a" in page and "w-b" in page and "no (update by hand)" in page
    assert f"Update agents to <code>{target}</code>" in page

    bad = post("/admin/agents/preview", {"canary": "x", "wave_size": "2"}, htmx=False)
    assert bad.status_code == 422 and "a whole number" in bad.get_data(as_text=True)

    shown = post("/admin/agents/preview", {"canary": "1", "wave_size": "2", "deadline_s": "30"}, htmx=False)
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "Wave 1 (canary)" in html and "Wave 2" in html and "Left out" in html
    assert f"Update 2 agents to {target}" in html
    digest = html.split('name="expect" value="')[1].split('"')[0]

    stale = post("/admin/agents/updates", {"canary": "0", "wave_size": "2", "deadline_s": "30", "expect": digest},
                 htmx=False)
    assert stale.status_code == 409 and "preview again" in stale.get_data(as_text=True)
    assert AgentRollout.query.count() == 0

    started = post("/admin/agents/updates", {"canary": "1", "wave_size": "2", "deadline_s": "30", "expect": digest},
                   htmx=False)
    assert started.status_code == 302
    rollout = AgentRollout.query.one()
    assert started.headers["Location"].endswith(f"/admin/agents/updates/{rollout.id}")
    show = client.get(f"/admin/agents/updates/{rollout.id}").get_data(as_text=True)
    assert "Agent update to" in show and "hx-trigger=\"every 2s\"" in show and "Cancel agent update" in show
    polled = client.get(f"/admin/agents/updates/{rollout.id}/progress", headers=HX)
    assert polled.status_code == 200 and polled.headers["Cache-Control"] == "no-store"

    cancelled = post(f"/admin/agents/updates/{rollout.id}/cancel", token_from=f"/admin/agents/updates/{rollout.id}")
    assert cancelled.status_code == 200 and "Cancelled" in cancelled.get_data(as_text=True)
    final = client.get(f"/admin/agents/updates/{rollout.id}/progress", headers=HX)
    assert final.status_code == 286 and "every 2s" not in final.get_data(as_text=True)
    assert {"agent_update.start", "agent_update.cancel"} <= {e.action for e in AuditEvent.query}
    assert client.get("/admin/agents/updates/999999").status_code == 404
