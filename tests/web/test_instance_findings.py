"""The instance page's Overview shows what the latest scans found (drift, updates, agent inventory), and an operator
can scan one tenant now."""

from __future__ import annotations

from sqlalchemy import select

from ccp.models import InstanceScan, ScanRun, utcnow
from tests.factories import make_instance
from tests.web.conftest import HX, csrf_token


def _overview(client, slug: str) -> str:
    response = client.get(f"/instances/{slug}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_overview_says_not_scanned_until_a_scan_ran(client, login):
    login("viewer")
    inst = make_instance()
    page = _overview(client, inst.slug)
    assert "Fleet scan" in page and "Not scanned yet" in page
    assert "Scan now" not in page  # viewers cannot start one


def test_overview_shows_each_finding(client, login, db):
    login("operator")
    inst = make_instance(image_tag="v3")
    db.session.add(InstanceScan(
        instance_id=inst.id, sync_state="drifted", drifted_files=["docker-compose.yml", "nginx/site.conf"],
        drift_at=utcnow(), update_state="update_available", behind_by=2, newest_tag="v5", update_at=utcnow(),
        update_detail="registry digest differs from the running one", image_digests={},
        agent_facts={"reachable": True, "version": "0.9.1", "protocol": 1, "protocol_current": 2, "docker": "20.10.24",
                     "compose": "2.29.1", "problems": ["compose plugin missing"], "disk_free_bytes": 5 * 1024 ** 3,
                     "clock_skew_s": -1.25}, agent_at=utcnow()))
    db.session.commit()
    page = _overview(client, inst.slug)
    assert "Drifted" in page and "docker-compose.yml" in page and "nginx/site.conf" in page
    assert f"/fleet/drift/{inst.slug}" in page
    assert "Update available" in page and "v5" in page and "behind by 2 releases" in page
    assert "agent 0.9.1" in page and "CCP speaks 2" in page and "Docker 20.10.24" in page
    assert "5.0 GiB" in page and "-1.2 s" in page and "compose plugin missing" in page


def test_unreachable_agent_and_unknown_updates_read_as_such(client, login, db):
    login("viewer")
    inst = make_instance()
    db.session.add(InstanceScan(instance_id=inst.id, sync_state="unreachable", sync_detail="connection refused",
                                drifted_files=[], update_state="unknown", update_detail="no receiver names this "
                                "tenant's image", image_digests={}, agent_facts={"reachable": False},
                                unreachable_since=utcnow(), agent_at=utcnow()))
    db.session.commit()
    page = _overview(client, inst.slug)
    assert "Unreachable" in page and "connection refused" in page and "Did not answer" in page
    assert "Unknown: no receiver names" in page


def test_scan_now_queues_one_job_for_this_instance(client, login, db):
    from ccp.extensions import get_background_queue

    inst, _other = make_instance(), make_instance()
    login("viewer")
    url = f"/instances/{inst.slug}/scan"
    assert client.post(url, headers={"X-CSRFToken": csrf_token(client)}).status_code == 403
    client.post("/logout", headers={"X-CSRFToken": csrf_token(client)})
    login("operator")
    response = client.post(url, headers={**HX, "X-CSRFToken": csrf_token(client)})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/instances/{inst.slug}"
    run = db.session.execute(select(ScanRun)).scalar_one()
    assert run.total == 1 and len(get_background_queue()) == 1
    assert client.post("/instances/no-such/scan", headers={"X-CSRFToken": csrf_token(client)}).status_code == 404
