"""Admin page for schedules and notification channels: admins only, validated, audited, URL never shown back."""

from __future__ import annotations

from sqlalchemy import select

from ccp.extensions import get_queue
from ccp.models import NotificationChannel, ScanRun, ScanSchedule
from tests.factories import make_instance

SECRET = "xoxb-very-secret-token-1234567890"
URL = f"json://ccp:{SECRET}@127.0.0.1:9/hook"


def test_only_admins_reach_it(client, login, post):
    login("operator")
    assert client.get("/admin/awareness").status_code == 403
    assert post("/admin/schedules/drift", {"cron": "* * * * *"}, htmx=False).status_code == 403
    assert post("/admin/channels", {"name": "x", "url": URL, "events": "scan.drift"}, htmx=False).status_code == 403
    assert "/admin/awareness" not in client.get("/").get_data(as_text=True)


def test_schedules_are_shown_edited_and_bad_cron_changes_nothing(client, login, post, db):
    login("admin")
    page = client.get("/admin/awareness").get_data(as_text=True)
    assert 'value="0 * * * *"' in page and "Drift scan" in page and "Agent inventory" in page
    response = post("/admin/schedules/drift", {"cron": "*/10 * * * *", "enabled": "on"}, htmx=False,
                    token_from="/admin/awareness")
    assert response.status_code == 302
    db.session.expire_all()
    drift = db.session.execute(select(ScanSchedule).filter_by(kind="drift")).scalar_one()
    assert drift.cron == "*/10 * * * *" and drift.enabled and drift.next_run_at is not None
    bad = post("/admin/schedules/drift", {"cron": "every hour", "enabled": "on"}, htmx=False,
               token_from="/admin/awareness")
    assert bad.status_code == 422 and "five fields" in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.execute(select(ScanSchedule.cron).filter_by(kind="drift")).scalar() == "*/10 * * * *"
    post("/admin/schedules/updates", {"cron": "30 */6 * * *"}, htmx=False, token_from="/admin/awareness")  # off
    db.session.expire_all()
    assert not db.session.execute(select(ScanSchedule.enabled).filter_by(kind="updates")).scalar()


def test_run_now_starts_a_scan(client, login, post, db):
    make_instance()
    login("admin")
    assert post("/admin/schedules/agents/run", htmx=False, token_from="/admin/awareness").status_code == 302
    run = db.session.execute(select(ScanRun)).scalar_one()
    assert run.kinds == ["agents"] and run.total == 1
    assert f"#{run.id} agents (manual)" in client.get("/admin/awareness").get_data(as_text=True)


def test_channel_added_tested_switched_off_and_deleted_url_never_shown(client, login, post, db):
    login("admin")
    response = post("/admin/channels", {"name": "ops", "url": URL, "events": ["scan.drift", "rollout.halted"],
                                        "unreachable_after_min": "30"}, htmx=False, token_from="/admin/awareness")
    assert response.status_code == 302
    page = client.get("/admin/awareness").get_data(as_text=True)
    assert "ops" in page and "Rollout halted, Drift found" in page and SECRET not in page
    channel = db.session.execute(select(NotificationChannel)).scalar_one()
    assert channel.unreachable_after_s == 1800 and SECRET not in channel.url_enc
    assert post(f"/admin/channels/{channel.id}/test", htmx=False, token_from="/admin/awareness").status_code == 302
    assert len(get_queue()) == 1
    post(f"/admin/channels/{channel.id}/enabled", htmx=False, token_from="/admin/awareness")
    db.session.expire_all()
    assert db.session.get(NotificationChannel, channel.id).enabled is False
    assert "Switch on" in client.get("/admin/awareness").get_data(as_text=True)
    post(f"/admin/channels/{channel.id}/delete", htmx=False, token_from="/admin/awareness")
    db.session.expire_all()
    assert db.session.execute(select(NotificationChannel)).first() is None
    assert post("/admin/channels/999/test", htmx=False, token_from="/admin/awareness").status_code == 404


def test_bad_channel_shows_why_keeps_what_was_typed_and_saves_nothing(client, login, post, db):
    login("admin")
    bad = post("/admin/channels", {"name": "ops", "url": "nope://" + SECRET, "events": ["scan.drift"],
                                   "unreachable_after_min": "5"}, htmx=False, token_from="/admin/awareness")
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "an Apprise URL Apprise understands" in body
    assert 'value="ops"' in body and "value=\"scan.drift\" checked" in body
    assert SECRET not in body  # the URL field is never filled back
    assert db.session.execute(select(NotificationChannel)).first() is None
