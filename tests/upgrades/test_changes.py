"""The polled path's reuse (ccp.services.changes, ccp.web.polling): whoever commits a change to an upgrade announces it and the next poll shows
it; a change nobody announced shows within CCP_STATUS_REUSE_S; how a feed counts notices; the one cache's bounds."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from ccp.services import changes
from ccp.web.polling import PollCache
from ccp.models import Upgrade, UpgradeStep, utcnow
from ccp.services import upgrades
from ccp.services.reaper import reap_interrupted
from tests.factories import make_instance
from tests.web import conftest as web
from tests.web.conftest import HX

login, fresh_g_per_request = web.login, web.fresh_g_per_request  # the UI's fixtures: log in, one `g` per request


def _wait(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def notices(redis_url):
    """Notices this process sent on the change channel, as another process sees them: next() -> the next one's
    topic ("<install> <upgrade id>"); notices of other processes (other test runs on this Redis) are skipped."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(changes.CHANNEL)
    _wait(lambda: pubsub.get_message(timeout=0.1) is None and client.pubsub_numsub(changes.CHANNEL)[0][1] > 0,
          what="subscription")

    def _next(timeout: float = 3.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                origin, _, topic = message["data"].decode().partition(" ")
                if origin == changes.process_origin():
                    return topic
        return None

    yield _next
    pubsub.close()
    client.close()


@pytest.fixture
def feed(app):
    """This process's feed for the app's Redis, subscribed (so polls may reuse what they rendered)."""
    current = changes.current_feed()
    _wait(current.subscribed.is_set, what="the feed's subscription")
    return current


def _running_upgrade(db) -> Upgrade:
    upgrade = Upgrade(instance_id=make_instance().id, kind="release", status="running", to_tag="v2", actor="t",
                      started_at=utcnow())
    db.session.add(upgrade)
    db.session.flush()
    db.session.add(UpgradeStep(upgrade_id=upgrade.id, position=0, name="render", status="running",
                               output_tail="rendering"))
    db.session.commit()
    return upgrade


def _poll(client, upgrade_id: int) -> str:
    return client.get(f"/upgrades/{upgrade_id}/status", headers=HX).get_data(as_text=True)


def test_announce_counts_at_once_and_tells_the_others(app, db, feed, notices):
    """A commit by itself announces nothing (no session listeners): the code that changed the upgrade does."""
    upgrade = _running_upgrade(db)
    before = changes.stamp(upgrade.id)
    upgrade.steps[0].output_tail = "pulling"
    db.session.commit()
    assert notices(timeout=0.3) is None and changes.stamp(upgrade.id) == before
    changes.announce(upgrade.id)
    assert changes.stamp(upgrade.id) != before, "this process's own next poll must see its change"
    assert notices() == changes.topic(upgrade.id) == f"{app.config['CCP'].queue_name} {upgrade.id}"


def test_every_writer_announces_so_the_next_poll_shows_it(app, db, client, login, feed, tenant, run_worker):
    """The runner, cancel (queued and running) and the reaper announce what they commit: with reuse unbounded,
    only their announcements can refresh the widget."""
    app.config["CCP"].status_reuse_s = 3600
    login("operator")
    done = upgrades.start_quick(tenant, actor="t")  # enqueue announces
    assert "Queued" in _poll(client, done.id) and "Queued" in _poll(client, done.id)
    run_worker()  # the runner: claim, every step, finish
    assert "Succeeded" in _poll(client, done.id)

    queued = upgrades.start_quick(tenant, actor="t")
    assert "Queued" in _poll(client, queued.id)
    upgrades.cancel_upgrade(queued, actor="t")
    assert "Cancelled" in _poll(client, queued.id)

    running = upgrades.start_quick(tenant, actor="t")
    db.session.execute(update(Upgrade).where(Upgrade.id == running.id)
                       .values(status="running", started_at=utcnow(), heartbeat_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    changes.announce(running.id)  # as the runner does when it claims a job
    assert "Running" in _poll(client, running.id)
    upgrades.cancel_upgrade(db.session.get(Upgrade, running.id), actor="t")
    assert "Cancel requested" in _poll(client, running.id)
    assert reap_interrupted() == [running.id]
    assert "Interrupted" in _poll(client, running.id)


def test_a_change_nobody_announced_shows_within_the_reuse_bound(app, db, client, login, feed):
    app.config["CCP"].status_reuse_s = 0.5
    login("viewer")
    upgrade = _running_upgrade(db)
    assert "rendering" in _poll(client, upgrade.id)
    db.session.execute(update(UpgradeStep).where(UpgradeStep.upgrade_id == upgrade.id).values(output_tail="by hand"))
    db.session.commit()  # e.g. a fix made in SQL: nobody announces it
    assert "rendering" in _poll(client, upgrade.id), "reused while no notice arrived"
    time.sleep(0.5)
    assert "by hand" in _poll(client, upgrade.id)


def test_without_notices_every_poll_reads(app, db, client, login, monkeypatch):
    """A process that cannot hear notices (Redis away: stamp None) reuses nothing."""
    app.config["CCP"].status_reuse_s = 3600
    login("viewer")
    upgrade = _running_upgrade(db)
    monkeypatch.setattr(changes.ChangeFeed, "stamp", lambda self, upgrade_id: None)
    assert "rendering" in _poll(client, upgrade.id)
    db.session.execute(update(UpgradeStep).where(UpgradeStep.upgrade_id == upgrade.id).values(output_tail="by hand"))
    db.session.commit()
    assert "by hand" in _poll(client, upgrade.id)


def test_feed_counts_notices_per_upgrade(redis_url):
    """A notice changes that upgrade's stamp only (an upgrade of another install is another topic); our own echo
    is not counted twice."""
    client = redis.Redis.from_url(redis_url)
    feed = changes.feed(client)
    _wait(feed.subscribed.is_set, what="the feed's subscription")
    one, two, other = feed.stamp("inst-a 101"), feed.stamp("inst-a 102"), feed.stamp("inst-b 101")
    client.publish(changes.CHANNEL, "another-process inst-a 101")
    _wait(lambda: feed.stamp("inst-a 101") != one, what="notice for 101")
    assert feed.stamp("inst-a 102") == two and feed.stamp("inst-b 101") == other
    three = feed.stamp("inst-a 103")
    client.publish(changes.CHANNEL, f"{changes.process_origin()} inst-a 103")  # our own echo: counted already
    client.publish(changes.CHANNEL, "another-process inst-a 104")
    _wait(lambda: feed.stamp("inst-a 104") != two, what="notice for 104")
    assert feed.stamp("inst-a 103") == three
    assert changes.feed(client) is feed, "one feed per process and Redis server"
    client.close()


def test_feed_without_redis_asks_callers_to_read_the_database():
    """Nothing listening on the port: the feed never claims to be subscribed, so every stamp is None."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    feed = changes.ChangeFeed(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2))
    time.sleep(0.5)
    assert not feed.subscribed.is_set() and feed.stamp("inst-a 1") is None


def test_poll_cache_is_bounded_in_age_and_size(monkeypatch):
    cache = PollCache()
    cache.put(("a",), 1)
    assert cache.get(("a",)) == 1 and cache.get(("a",), max_age_s=0) is None
    cache.forget(("a",))
    assert cache.get(("a",)) is None
    monkeypatch.setattr(PollCache, "KEPT", 3)
    for i in range(3):
        cache.put(("n", i), i)
    cache.put(("n", 3), 3)  # full: everything else is dropped
    assert [cache.get(("n", i)) for i in range(4)] == [None, None, None, 3]
