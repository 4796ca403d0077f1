"""Fleet awareness over the API: the fleet with findings and filters, scans, schedules, channels (URL never out)."""

from __future__ import annotations

from sqlalchemy import select

from ccp.models import InstanceScan, NotificationChannel, ScanSchedule
from tests.api.auth_matrix_helpers import snapshot
from tests.api.conftest import assert_error
from tests.factories import make_instance

SECRET = "s3cret-webhook-token-abcdef"


def test_fleet_lists_findings_counts_and_filters(app, db, api, make_token):
    token = make_token("read")
    a, _ = make_instance(name="A"), make_instance(name="B")
    db.session.add(InstanceScan(instance_id=a.id, sync_state="drifted", drifted_files=["docker-compose.yml"],
                                agent_facts={}, image_digests={}))
    db.session.commit()
    body = api("GET", "/api/fleet", token).get_json()
    assert body["total"] == 2 and body["counts"]["drifted"] == 1 and body["filter"] is None
    row = next(r for r in body["items"] if r["slug"] == a.slug)
    assert row["flags"] == ["drifted"] and row["driftedFiles"] == ["docker-compose.yml"]
    assert row["reasons"][0]["why"] == "1 file differs from a re-apply: docker-compose.yml"
    only = api("GET", "/api/fleet?filter=drifted", token).get_json()
    assert [r["slug"] for r in only["items"]] == [a.slug] and only["filter"] == "drifted"
    assert_error(api("GET", "/api/fleet?filter=bogus", token), 400, "invalid_parameter")
    assert_error(api("GET", "/api/fleet?filter=", token), 400, "invalid_parameter")
    assert_error(api("GET", "/api/fleet?page=2", token), 400, "invalid_parameter")


def test_scan_start_and_show(app, db, api, make_token):
    make_instance()
    token = make_token("operate")
    resp = api("POST", "/api/scans", token, json={"kinds": ["drift"]})
    assert resp.status_code == 202 and resp.get_json()["total"] == 1
    run = api("GET", resp.headers["Location"], token).get_json()
    assert run["kinds"] == ["drift"] and run["done"] == 0 and run["finishedAt"] is None
    before = snapshot(db)
    assert_error(api("POST", "/api/scans", token, json={"kinds": ["drift", "nope"]}), 422, "invalid_scan")
    assert_error(api("POST", "/api/scans", token, json={"kind": "drift"}), 422, "validation_failed")
    assert snapshot(db) == before
    assert_error(api("GET", "/api/scans/999", token), 404, "not_found")


def test_schedule_change_is_validated(app, db, api, make_token):
    token = make_token("admin")
    resp = api("PATCH", "/api/schedules/updates", token, json={"cron": "15 3 * * 1", "enabled": True})
    assert resp.status_code == 200 and resp.get_json()["cron"] == "15 3 * * 1" and resp.get_json()["nextRunAt"]
    before = snapshot(db)
    assert_error(api("PATCH", "/api/schedules/updates", token, json={"cron": "* * * *"}), 422, "invalid_schedule")
    assert_error(api("PATCH", "/api/schedules/updates", token, json={"enabled": "yes"}), 422, "validation_failed")
    assert_error(api("PATCH", "/api/schedules/backups", token, json={"enabled": True}), 404, "not_found")
    assert_error(api("PATCH", "/api/schedules/updates", token, json={"every": "hour"}), 422, "validation_failed")
    assert snapshot(db) == before
    kinds = [s["kind"] for s in api("GET", "/api/schedules", token).get_json()["items"]]
    assert kinds == ["drift", "updates", "agents"]
    assert db.session.execute(select(ScanSchedule.cron).filter_by(kind="updates")).scalar() == "15 3 * * 1"


def test_channel_url_goes_in_and_never_comes_out(app, db, api, make_token):
    token = make_token("admin")
    url = f"json://ccp:{SECRET}@127.0.0.1:9/hook"
    resp = api("POST", "/api/channels", token, json={"name": "ops", "url": url, "events": ["scan.drift"],
                                                     "unreachableAfterS": 900})
    assert resp.status_code == 201 and SECRET not in resp.get_data(as_text=True)
    channel = resp.get_json()
    assert channel["urlHint"].startswith("json://") and channel["unreachableAfterS"] == 900
    for path in ("/api/channels", f"/api/channels/{channel['id']}/test", "/api/audit"):
        method = "POST" if path.endswith("/test") else "GET"
        assert SECRET not in api(method, path, token).get_data(as_text=True), path
    changed = api("PATCH", f"/api/channels/{channel['id']}", token, json={"events": ["rollout.halted"]}).get_json()
    assert changed["events"] == ["rollout.halted"] and changed["urlHint"] == channel["urlHint"]
    before = snapshot(db)
    for bad in ({"url": "nope://x"}, {"events": ["x"]}, {"unreachableAfterS": 5}, {"enabled": "no"},
                {"colour": "red"}):
        assert api("PATCH", f"/api/channels/{channel['id']}", token, json=bad).status_code == 422, bad
    assert_error(api("POST", "/api/channels", token, json={"name": "ops", "url": url, "events": []}), 422,
                 "invalid_channel")  # the name is taken
    assert snapshot(db) == before
    assert api("DELETE", f"/api/channels/{channel['id']}", token).status_code == 204
    assert db.session.execute(select(NotificationChannel)).first() is None
    assert_error(api("DELETE", f"/api/channels/{channel['id']}", token), 404, "not_found")


def test_wrong_json_types_are_refused_not_read_as_left_out(app, db, api, make_token):
    token = make_token("admin")
    before = snapshot(db)
    for path, body in (("/api/scans", {"kinds": None}), ("/api/scans", {"kinds": []}),
                       ("/api/scans", {"kinds": [["drift"]]}), ("/api/channels", {"name": "x", "url": None}),
                       ("/api/channels", {"name": "x", "url": "json://127.0.0.1:9/x", "events": [],
                                          "unreachableAfterS": True})):
        resp = api("POST", path, token, json=body)
        assert resp.status_code == 422, (path, body, resp.get_data(as_text=True))
    assert api("PATCH", "/api/schedules/drift", token, json={"cron": None}).status_code == 422
    assert api("DELETE", "/api/channels/99999999999", token).status_code == 404  # not 405
    assert snapshot(db) == before
