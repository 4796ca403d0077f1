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

