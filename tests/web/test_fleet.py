"""Fleet page: login required, last upgrade per instance, search as you type, constant query count at 1,000 rows."""

from __future__ import annotations

import statistics
import time

from sqlalchemy import event, func, select

from ccp.models import Instance, Upgrade
from tests.factories import make_instance
from tests.web.conftest import HX, csrf_token


def test_fleet_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_fleet_lists_instances_with_last_upgrade(client, login, db):
    login("viewer")
    a = make_instance(name="Alpha", domain="alpha.example.test", image_tag="v1")
    make_instance(name="Beta", image_tag="v3")
    db.session.add_all([Upgrade(instance_id=a.id, kind="quick", status="succeeded", actor="x"),
                        Upgrade(instance_id=a.id, kind="release", status="rolled_back", to_tag="v2", actor="x")])
    db.session.commit()
    page = client.get("/").get_data(as_text=True)
    assert "Alpha" in page and "alpha.example.test" in page and "v3" in page
    assert "Rolled back" in page and "Upgrade to Release" in page  # latest of Alpha's two
    assert "Never upgraded" in page  # Beta
    assert "Succeeded" not in page


def test_search_returns_rows_only_for_htmx_and_full_page_otherwise(client, login):
    login("viewer")
    make_instance(name="Alpha", domain="alpha.example.test")
    make_instance(name="Beta", domain="beta.example.test")
    partial = client.get("/?q=ALP", headers=HX)
    body = partial.get_data(as_text=True)
    assert "<html" not in body and "<tr>" in body
    assert "Alpha" in body and "Beta" not in body
    assert "HX-Request" in partial.headers["Vary"]
    full = client.get("/?q=beta").get_data(as_text=True)  # e.g. a history restore or a shared link
    assert "<html" in full and "Beta" in full and "Alpha" not in full
    boosted = client.get("/?q=beta", headers={**HX, "HX-Boosted": "true"}).get_data(as_text=True)
    assert "<html" in boosted
    assert "No instance matches" in client.get("/?q=%25_", headers=HX).get_data(as_text=True)


def test_agent_without_needed_capability_gets_a_warning_badge(client, login, db):
    login("viewer")
    inst = make_instance(name="Old agent")
    inst.agent_version, inst.agent_capabilities = "0.9", ["files.diff"]
    db.session.commit()
    page = client.get("/").get_data(as_text=True)
    assert "Agent too old" in page and "env.patch" in page


def _bulk_instances(db, count: int) -> None:
    start = db.session.execute(select(func.count(Instance.id))).scalar()
    rows = [Instance(slug=f"bulk-{start + i}", name=f"Bulk {start + i:05d}", domain=f"b{i}.example.test",
                     driver="remote", agent_url="http://127.0.0.1:9", compose_project=f"bulk{start + i}",
                     image_tag="v1", vars={}, health_urls=[], agent_capabilities=[])
            for i in range(count)]
    db.session.add_all(rows)
    db.session.flush()
    db.session.add_all([Upgrade(instance_id=r.id, kind="release", status=s, to_tag="v2", actor="bench")
                        for r in rows[::2] for s in ("failed", "succeeded")])
    db.session.commit()


def _count_statements(app, db, client) -> tuple[int, float]:
    db.session.remove()  # the test holds one app context; a real request starts with an empty session
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        started = time.perf_counter()
        response = client.get("/")
        elapsed = time.perf_counter() - started
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert response.status_code == 200
    return len(statements), elapsed


def test_fleet_query_count_is_constant_and_1000_rows_render_fast(app, client, login, db):
    login("viewer")
    _bulk_instances(db, 10)
    small, _ = _count_statements(app, db, client)
    _bulk_instances(db, 990)
    page = client.get("/").get_data(as_text=True)
    assert page.count("<tr>") == 1 + 1000 and page.count("Succeeded") == 500
    large, _ = _count_statements(app, db, client)
    assert small == large, f"{small} statements for 10 instances, {large} for 1000"
    timings = [_count_statements(app, db, client)[1] for _ in range(5)]
    print(f"fleet page, 1000 instances: {large} statements, median {statistics.median(timings) * 1000:.0f} ms")
    assert statistics.median(timings) <= 0.300, f"median {statistics.median(timings) * 1000:.0f} ms for 1000 rows"


def test_dry_run_tenants_are_labelled_after_the_agent_reports_it(client, login, tenant_factory):
    from ccp.services import upgrades

    login("viewer")
    inst = tenant_factory(driver="remote")  # its agent runs the dry-run runtime
    assert "Dry-run runtime" not in client.get("/").get_data(as_text=True)  # not known before the agent answers
    upgrades.preview_release(inst, "v2")  # stores the agent's capabilities
    assert "Dry-run runtime: no container changes" in client.get("/").get_data(as_text=True)
    page = client.get(f"/instances/{inst.slug}").get_data(as_text=True)
    assert "Dry-run runtime: no container changes" in page


def test_admin_pages_are_linked_for_admins_only(client, login):
    login("operator")
    assert "/admin/tokens" not in client.get("/").get_data(as_text=True)
    client.post("/logout", headers={"X-CSRFToken": csrf_token(client)})
    login("admin")
    page = client.get("/").get_data(as_text=True)
    assert "/admin/tokens" in page and "/admin/audit" in page



# --- Fleet awareness (issue #15): filters, counts, why each row is flagged, the drift diff, scanning now ----------

def _scan(db, inst, **fields):
    from ccp.models import InstanceScan

    db.session.add(InstanceScan(instance_id=inst.id, drifted_files=fields.pop("drifted_files", []),
                                agent_facts=fields.pop("agent_facts", {}), image_digests={}, **fields))
    db.session.commit()


def _flagged_fleet(db):
    from ccp.models import utcnow

    behind = make_instance(name="Behind one")
    _scan(db, behind, sync_state="in_sync", update_state="current", behind_by=2, newest_tag="v3",
          update_detail="behind by 2 releases (newest allowed: v3)", drift_at=utcnow())
    drifted = make_instance(name="Drifted one")
    _scan(db, drifted, sync_state="drifted", drifted_files=["docker-compose.yml", ".env"], drift_at=utcnow())
    gone = make_instance(name="Gone one")
    _scan(db, gone, sync_state="unreachable", sync_detail="agent at http://127.0.0.1:9 is unreachable",
          unreachable_since=utcnow())
    old = make_instance(name="Old one")
    old.agent_version, old.agent_capabilities = "0.9", ["files.diff"]
    busy = make_instance(name="Busy one")
    db.session.add(Upgrade(instance_id=busy.id, kind="quick", status="running", actor="x"))
    calm = make_instance(name="Calm one")
    _scan(db, calm, sync_state="in_sync", drift_at=utcnow())
    db.session.commit()
    return behind, drifted, gone, old, busy, calm


def test_filters_count_and_each_row_says_why(client, login, db):
    login("operator")
    behind, drifted, gone, old, busy, calm = _flagged_fleet(db)
    page = client.get("/").get_data(as_text=True)
    for label, count in (("All", 6), ("Behind", 1), ("Drifted", 1), ("Unreachable", 1), ("Agent too old", 1),
                         ("Attention", 0), ("Held", 1)):
        assert f"{label} <b>{count}</b>" in page, label
    assert "behind by 2 releases (newest allowed: v3)" in page
    assert "2 files differ from a re-apply: docker-compose.yml, .env" in page
    assert f'href="/fleet/drift/{drifted.slug}"' in page
    assert "agent at http://127.0.0.1:9 is unreachable" in page and "an upgrade is running" in page
    assert "In sync" in page
    only = client.get("/?f=drifted").get_data(as_text=True)
    assert "Drifted one" in only and "Behind one" not in only and 'aria-current="true">Drifted' in only
    assert "Old one" in client.get("/?f=agent_old").get_data(as_text=True)
    assert "Busy one" in client.get("/?f=held").get_data(as_text=True)
    assert "Calm one" in client.get("/?f=nonsense").get_data(as_text=True)  # an unknown filter shows all


def test_htmx_filter_answer_is_rows_plus_the_filter_bar_out_of_band(client, login, db):
    login("viewer")
    _flagged_fleet(db)
    body = client.get("/?f=unreachable&q=one", headers=HX).get_data(as_text=True)
    assert "<html" not in body and body.count("<tr>") == 1 and "Gone one" in body
    assert 'id="fleet-filters" class="fleet-filters" aria-label="Filters" hx-swap-oob="true"' in body
    assert 'id="fleet-flag" name="f" value="unreachable" hx-swap-oob="true"' in body
    assert "falls under this filter" in client.get("/?f=attention", headers=HX).get_data(as_text=True)
    assert "/fleet/drift/" not in client.get("/").get_data(as_text=True)  # a viewer gets no diff link


def test_drift_link_shows_what_a_reapply_would_restore(client, login, tenant_factory):
    from pathlib import Path

    login("operator")
    inst = tenant_factory()
    compose = Path(inst.install_dir) / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("restart: unless-stopped", "restart: always", 1)
                       + "# hand edit\n")
    page = client.get(f"/fleet/drift/{inst.slug}").get_data(as_text=True)
    assert "What a re-apply of <code>v1</code> would restore" in page
    assert "1 modified" in page and "docker-compose.yml" in page and "hand edit" in page
    assert f"Apply v1 to {inst.name}" in page


def test_scan_now_needs_operate_and_queues_one_job_per_instance(client, login, post, db):
    from ccp.extensions import get_background_queue
    from ccp.models import ScanRun

    make_instance(), make_instance()
    login("viewer")
    assert post("/fleet/scan", htmx=False).status_code == 403
    client.post("/logout", headers={"X-CSRFToken": csrf_token(client)})
    login("operator")
    response = post("/fleet/scan")
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/"
    run = db.session.execute(select(ScanRun)).scalar_one()
    assert run.total == 2 and run.kinds == ["agents", "drift", "updates"] and len(get_background_queue()) == 2
    assert f"Last scan #{run.id}" in client.get("/").get_data(as_text=True)


def test_fleet_with_scan_rows_keeps_its_query_count_and_speed(app, client, login, db):
    from ccp.models import InstanceScan

    login("viewer")
    _bulk_instances(db, 10)
    small, _ = _count_statements(app, db, client)
    _bulk_instances(db, 990)
    ids = db.session.execute(select(Instance.id)).scalars().all()
    db.session.add_all([InstanceScan(instance_id=i, sync_state="drifted" if i % 3 else "in_sync",
                                     drifted_files=["docker-compose.yml"], agent_facts={"protocol": 1},
                                     image_digests={}, behind_by=i % 2) for i in ids])
    db.session.commit()
    large, _ = _count_statements(app, db, client)
    assert small == large
    timings = [_count_statements(app, db, client)[1] for _ in range(5)]
    print(f"fleet page with scan results, 1000 instances: {large} statements, "
          f"median {statistics.median(timings) * 1000:.0f} ms")
    assert statistics.median(timings) <= 0.300
