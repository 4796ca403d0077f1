"""Maintenance windows and holds through the API: PUT/DELETE /api/instances/<ref>/window and /hold (operate scope,
audited, bad fields refused by name with nothing changed), the instance JSON, manual starts that need
`outsideWindowOk` / `heldOk`, and a receiver's decision naming the held tenants it skipped."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from sqlalchemy import func, select

from ccp.extensions import get_queue
from ccp.models import AuditEvent, Rollout, Upgrade, WebhookDelivery
from ccp.services.intake import decide_pending
from tests.api.conftest import assert_error
from tests.intake.fake_registry import registry_fixture  # noqa: F401 - provides `fake_registry`
from tests.intake.senders import REPO, make_sender

BERLIN = {"cron": "0 2 * * *", "minutes": 120, "timezone": "Europe/Berlin"}


def _audit(db, action: str) -> list[AuditEvent]:
    return list(db.session.execute(select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)).scalars())


def test_set_read_and_remove_a_window(app, db, api, make_token, tenant):
    op = make_token("operate")
    with time_machine.travel(datetime.fromisoformat("2026-03-03T12:00:00+00:00")):
        resp = api("PUT", f"/api/instances/{tenant.slug}/window", op, json=BERLIN)
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["window"] == {
            "cron": "0 2 * * *", "minutes": 120, "timezone": "Europe/Berlin", "label": "daily 02:00–04:00 Europe/Berlin",
            "open": False, "endsAt": None, "nextOpen": "2026-03-04T01:00:00+00:00"}
        assert api("GET", f"/api/instances/{tenant.id}", make_token("read")).get_json()["window"]["open"] is False
    (event,) = _audit(db, "instance.window.set")
    assert event.actor.startswith("token:") and event.target == tenant.slug
    assert event.detail == {"cron": "0 2 * * *", "minutes": 120, "timezone": "Europe/Berlin", "before": None}
    resp = api("DELETE", f"/api/instances/{tenant.slug}/window", op)
    assert resp.status_code == 200 and resp.get_json()["window"] is None
    assert len(_audit(db, "instance.window.clear")) == 1


@pytest.mark.parametrize("body, fields", [
    ({"cron": "0 2 * *", "minutes": 60}, {"cron"}),
    ({"cron": "not cron at all", "minutes": 60}, {"cron"}),
    ({"cron": "0 2 * * *", "minutes": 60, "timezone": "Europe/Atlantis"}, {"timezone"}),
    ({"cron": "0 2 * * *", "minutes": 0}, {"minutes"}),
    ({"cron": "0 2 * * *", "minutes": 1441}, {"minutes"}),
    ({"cron": "0 2 * * *", "minutes": 60.5}, {"minutes"}),
    ({"cron": "0 2 * * *"}, {"minutes"}),
    ({"cron": 5, "minutes": "x", "timezone": []}, {"cron", "minutes", "timezone"}),
])
def test_a_bad_window_is_refused_by_field_and_changes_nothing(app, db, api, make_token, tenant, body, fields):
    op = make_token("operate")
    assert api("PUT", f"/api/instances/{tenant.slug}/window", op, json=BERLIN).status_code == 200
    err = assert_error(api("PUT", f"/api/instances/{tenant.slug}/window", op, json=body), 422, "validation_failed")
    assert set(err["details"]) == fields
    window = api("GET", f"/api/instances/{tenant.slug}", op).get_json()["window"]
    assert (window["cron"], window["minutes"], window["timezone"]) == ("0 2 * * *", 120, "Europe/Berlin")
    assert len(_audit(db, "instance.window.set")) == 1


def test_unknown_fields_and_scopes(app, db, api, make_token, tenant):
    err = assert_error(api("PUT", f"/api/instances/{tenant.slug}/window", make_token("operate"),
                           json={**BERLIN, "days": "mon"}), 422)
    assert "days" in str(err)
    for method, path, body in (("PUT", "window", BERLIN), ("DELETE", "window", None),
                               ("PUT", "hold", {"reason": "x"}), ("DELETE", "hold", None)):
        assert_error(api(method, f"/api/instances/{tenant.slug}/{path}", make_token("read"), json=body), 403,
                     "insufficient_scope")
        assert api(method, f"/api/instances/{tenant.slug}/{path}", None, json=body).status_code == 401
    assert_error(api("PUT", "/api/instances/nope/window", make_token("operate"), json=BERLIN), 404, "not_found")
    assert db.session.execute(select(func.count(AuditEvent.id)).where(
        AuditEvent.action.like("instance.window.%") | AuditEvent.action.like("instance.hold.%"))).scalar() == 0


def test_hold_and_release(app, db, api, make_token, tenant):
    op = make_token("operate")
    with time_machine.travel(datetime.fromisoformat("2026-06-01T10:00:00+00:00")):
        for body, fields in (({"reason": ""}, {"reason"}), ({"reason": "x", "until": "2026-05-01T00:00:00Z"}, {"until"}),
                             ({"reason": "x", "until": "2026-07-01T00:00:00"}, {"until"}),  # no offset
                             ({"reason": "x", "until": "soon"}, {"until"}), ({"reason": "a\nb"}, {"reason"}),
                             ({"reason": "x" * 501}, {"reason"}), ({"until": "2026-07-01T00:00:00Z"}, {"reason"})):
            err = assert_error(api("PUT", f"/api/instances/{tenant.slug}/hold", op, json=body), 422,
                               "validation_failed")
            assert set(err["details"]) == fields, (body, err)
        assert api("GET", f"/api/instances/{tenant.slug}", op).get_json()["hold"] is None
        resp = api("PUT", f"/api/instances/{tenant.slug}/hold", op,
                   json={"reason": "month-end close", "until": "2026-06-03T18:00:00+02:00"})
        assert resp.status_code == 200, resp.get_json()
        hold = resp.get_json()["hold"]
        assert hold["reason"] == "month-end close" and hold["until"] == "2026-06-03T16:00:00+00:00"
        assert hold["active"] is True and hold["by"].startswith("token:")
        (event,) = _audit(db, "instance.hold.set")
        assert event.detail["reason"] == "month-end close" and event.detail["tag"] == "v1"
        resp = api("DELETE", f"/api/instances/{tenant.slug}/hold", op)
        assert resp.status_code == 200 and resp.get_json()["hold"] is None
        assert len(_audit(db, "instance.hold.clear")) == 1


def test_manual_starts_outside_the_window_need_outside_window_ok(app, db, api, make_token, tenant):
    op = make_token("operate")
    with time_machine.travel(datetime.fromisoformat("2026-03-03T12:00:00+00:00")):
        api("PUT", f"/api/instances/{tenant.slug}/window", op, json=BERLIN)
        for path in ("quick-upgrade", "upgrade-now", "upgrade-release"):
            err = assert_error(api("POST", f"/api/instances/{tenant.slug}/{path}", op, json={}), 409,
                               "outside_window")
            assert err["details"]["nextOpen"] == "2026-03-04T01:00:00+00:00"
            assert err["details"]["confirm"] == "outsideWindowOk" and "opens Wed 02:00 Europe/Berlin" in err["message"]
        err = assert_error(api("POST", f"/api/instances/{tenant.slug}/quick-upgrade", op,
                               json={"outsideWindowOk": "yes"}), 422, "validation_failed")
        assert err["details"] == {"outsideWindowOk": "must be true or false"}
        assert db.session.execute(select(func.count(Upgrade.id))).scalar() == 0
        resp = api("POST", f"/api/instances/{tenant.slug}/upgrade-release", op,
                   json={"imageTag": "v2", "outsideWindowOk": True})
        assert resp.status_code == 202, resp.get_json()
    (event,) = [e for e in _audit(db, "upgrade.start.release") if e.result == "ok"]
    assert event.detail["outside_window"] is True and event.detail["upgrade_id"] == resp.get_json()["id"]
    assert [e.result for e in _audit(db, "upgrade.start.quick")] == ["refused:outside_window"]


def test_a_held_tenant_needs_held_ok(app, db, api, make_token, tenant):
    op = make_token("operate")
    api("PUT", f"/api/instances/{tenant.slug}/hold", op, json={"reason": "legal review"})
    err = assert_error(api("POST", f"/api/instances/{tenant.slug}/upgrade-now", op), 409, "held")
    assert "legal review" in err["message"] and err["details"]["confirm"] == "heldOk"
    assert api("POST", f"/api/instances/{tenant.slug}/upgrade-now", op, json={"heldOk": True}).status_code == 202
    assert _audit(db, "upgrade.start.full")[-1].detail["held"] is True


def test_a_receiver_skips_held_tenants_and_says_so(app, db, api, make_token, client, tenant_factory, fake_registry):
    app.config["CCP"].receiver_window_s = 0
    free = tenant_factory(slug="rx-free")
    held = tenant_factory(slug="rx-held")
    registry = fake_registry()
    registry.push(REPO, "v1")
    registry.push(REPO, "v2.0.0")
    admin = make_token("admin")
    api("PUT", f"/api/instances/{held.slug}/hold", admin, json={"reason": "customer freeze"})
    sender = make_sender(api, admin, "github", registry.image(REPO))

    def deliver(tag: str) -> WebhookDelivery:
        assert sender.send(client, tag=tag).status_code == 202
        for job in get_queue().get_jobs():
            if job.func_name == "ccp.jobs.decide_deliveries":
                get_queue().remove(job)
                decide_pending(*job.args, wait=False)
        db.session.expire_all()
        return db.session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id.desc())).scalars().first()

    delivery = deliver("v2.0.0")
    assert delivery.decision == "started", delivery.reason
    assert "1 held tenant(s) skipped (rx-held held until released by token:" in delivery.reason
    assert "customer freeze" in delivery.reason and "to 1 tenant(s)" in delivery.reason
    rollout = db.session.get(Rollout, delivery.rollout_id)
    assert [w["instances"] for w in rollout.waves] == [[free.id]]
    rollout.status = "succeeded"  # as if it ran: the next delivery may start one
    db.session.commit()
    api("PUT", "/api/instances/rx-free/hold", admin, json={"reason": "second freeze"})
    delivery = deliver("v2.0.0")
    assert delivery.decision == "ignored"
    assert delivery.reason.startswith("tenants held: every tenant to upgrade is on hold (rx-free held until")
    assert "rx-held held until released" in delivery.reason and "replay this delivery" in delivery.reason
