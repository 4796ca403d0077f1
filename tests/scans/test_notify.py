"""Notifications through Apprise to a real HTTP receiver on 127.0.0.1 (json://): exactly the chosen events, one
batched message per scan or housekeeping pass, no secret in any message, audit or API-visible field."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy import update as sa_update

from ccp.models import AuditEvent, NotificationChannel, Rollout, Upgrade, utcnow
from ccp.services import notify
from ccp.services.notify import ChannelInvalid, collect_ended, create_channel, send_test
from ccp.services.scan_runs import start_scan
from tests.tenants import CANARY

URL_SECRET = "tok3n-" + CANARY


def _channel(receiver, events, name="ops", **kw):
    url = receiver.url.replace("json://", f"json://ccp:{URL_SECRET}@")
    return create_channel(name, url, events, actor="user:admin", **kw)


def test_channel_url_is_encrypted_and_shown_only_masked(app, db, http_receiver):
    channel = _channel(http_receiver, ["scan.drift"])
    assert URL_SECRET not in channel.url_enc and URL_SECRET not in channel.url_hint
    assert channel.url_hint.startswith("json://") and "127.0.0.1" in channel.url_hint
    assert channel.url().endswith("/hook") and URL_SECRET in channel.url()
    for event in db.session.execute(select(AuditEvent)).scalars():
        assert URL_SECRET not in str(event.detail) and URL_SECRET not in (event.target or "")


@pytest.mark.parametrize("name,url,events", [
    ("", "json://127.0.0.1:9/x", ["scan.drift"]), ("ok", "nope://x", ["scan.drift"]), ("ok", "", []),
    ("ok", "json://127.0.0.1:9/x", ["scan.bogus"]), ("ok", "json://127.0.0.1:9/x", "scan.drift"),
])
def test_bad_channel_is_refused_and_nothing_saved(app, db, name, url, events):
    with pytest.raises(ChannelInvalid) as caught:
        create_channel(name, url, events, actor="test")
    assert caught.value.status == 422
    assert db.session.execute(select(NotificationChannel)).first() is None


def test_drift_scan_sends_one_batch_with_only_the_chosen_events(app, db, run_worker, tenant_factory,
                                                                  http_receiver):
    from tests.scans.conftest import Receiver

    others = Receiver()
    try:
        create_channel("updates-only", others.url, ["scan.update_available"], actor="test")
        _channel(http_receiver, ["scan.drift", "upgrade.failed"])
        a, b = tenant_factory(), tenant_factory()
        for inst in (a, b):
            env = Path(inst.install_dir) / ".env"  # someone changed a secret by hand on the host
            env.write_text(env.read_text().replace(CANARY, "hand-edited-" + CANARY))
        start_scan(["drift"], actor="test")
        run_worker()
        assert len(http_receiver.posts) == 1, http_receiver.posts  # one message for the whole scan
        body = http_receiver.posts[0]["body"]
        assert "drift found" in body["title"].lower()
        assert f"- {a.slug}: .env" in body["message"] and f"- {b.slug}: .env" in body["message"]
        assert CANARY not in http_receiver.posts[0]["raw"] and URL_SECRET not in http_receiver.posts[0]["raw"]
        assert others.posts == []  # subscribed to updates only: no drift message
        sent = db.session.execute(select(AuditEvent).filter_by(action="notify.sent")).scalars().all()
        assert len(sent) == 1 and sent[0].target == "channel:ops" and sent[0].detail["events"] == ["scan.drift"]
        assert URL_SECRET not in str(sent[0].detail)
        start_scan(["drift"], actor="test")  # nothing new: nothing told (a drifted tenant is told once)
        run_worker()
        assert len(http_receiver.posts) == 1
        compose = Path(a.install_dir) / "docker-compose.yml"
        compose.write_text(compose.read_text() + "# and another hand edit\n")
        start_scan(["drift"], actor="test")  # a's drifted files changed: told again, b not
        run_worker()
        assert len(http_receiver.posts) == 2
        message = http_receiver.posts[1]["body"]["message"]
        assert f"- {a.slug}: .env, docker-compose.yml" in message and b.slug not in message
    finally:
        others.stop()


def test_nothing_found_sends_nothing(app, db, run_worker, tenant_factory, http_receiver):
    _channel(http_receiver, list(notify.EVENT_LABELS))
    tenant_factory()
    start_scan(["drift"], actor="test")
    run_worker()
    assert http_receiver.posts == []


def test_unreachable_is_told_only_after_the_channel_threshold(app, db, run_worker, http_receiver):
    from ccp.models import InstanceScan
    from tests.factories import make_instance

    _channel(http_receiver, ["agent.unreachable"], unreachable_after_s=600)
    inst = make_instance()
    start_scan(["agents"], actor="test")
    run_worker()
    assert http_receiver.posts == []  # unreachable for seconds only
    from datetime import timedelta

    from ccp.models import ScanRun

    now = utcnow()
    row = db.session.get(InstanceScan, inst.id)
    row.unreachable_since = now - timedelta(seconds=700)  # 10 min crossed 100 s ago...
    db.session.execute(sa_update(ScanRun).values(created_at=now - timedelta(hours=1)))  # ...after the last scan
    db.session.commit()
    start_scan(["agents"], actor="test")
    run_worker()
    assert len(http_receiver.posts) == 1 and inst.slug in http_receiver.posts[0]["body"]["message"]
    start_scan(["agents"], actor="test")  # still unreachable: told once, not on every scan
    run_worker()
    assert len(http_receiver.posts) == 1


def test_ended_upgrades_and_rollouts_are_batched_per_rollout(app, db, run_worker, http_receiver):
    from tests.factories import make_instance

    channel = _channel(http_receiver, ["upgrade.failed", "rollout.halted"])
    channel.events_since = utcnow().replace(year=2020)
    db.session.commit()
    a, b, c = make_instance(), make_instance(), make_instance()
    now = utcnow()
    rollout = Rollout(tag="v2", status="halted", finished_at=now, actor="x")
    db.session.add(rollout)
    db.session.flush()
    db.session.add_all([
        Upgrade(instance_id=a.id, kind="release", status="failed", to_tag="v2", rollout_id=rollout.id,
                finished_at=now, actor="x", error=f"agent said {CANARY}"),
        Upgrade(instance_id=b.id, kind="release", status="failed", to_tag="v3", from_tag="v1", finished_at=now,
                actor="x"),
        Upgrade(instance_id=c.id, kind="release", status="rolled_back", to_tag="v3", finished_at=now, actor="x"),
    ])
    db.session.commit()
    assert collect_ended() == 1 and collect_ended() == 0  # claimed once
    run_worker()
    assert len(http_receiver.posts) == 1
    message = http_receiver.posts[0]["body"]["message"]
    assert f"Rollout #{rollout.id} to v2: halted; 1 upgrade(s) did not succeed: {a.slug} (failed)" in message
    assert f"Upgrade failed: {b.slug}" in message and "(v1 -> v3)" in message
    assert c.slug not in message  # rolled back: not chosen
    assert CANARY not in http_receiver.posts[0]["raw"]  # an upgrade's error text is never sent


def test_send_test_and_a_refusing_service_is_retried_and_audited(app, db, run_worker, http_receiver):
    from ccp.extensions import get_queue
    from rq.job import Job

    channel = _channel(http_receiver, [])
    send_test(channel.id, actor="user:admin")
    run_worker()
    assert len(http_receiver.posts) == 1 and "test" in http_receiver.posts[0]["body"]["title"].lower()
    http_receiver.status = 500
    job_id = send_test(channel.id, actor="user:admin")
    run_worker()
    failed = db.session.execute(select(AuditEvent).filter_by(action="notify.failed")).scalars().all()
    assert len(failed) == 1 and failed[0].result == "failed"
    job = Job.fetch(job_id, connection=get_queue().connection)
    assert job.retries_left == 2 and job.get_status() in ("scheduled", "queued")
    db.session.expire_all()
    assert db.session.get(NotificationChannel, channel.id).last_error
