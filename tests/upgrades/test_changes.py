"""Upgrade change notices (ccp.changes): what a commit announces, how a feed counts them, and its fallback."""

from __future__ import annotations

import socket
import time

import pytest
import redis
from sqlalchemy import update

from ccp import changes
from ccp.models import Upgrade, UpgradeStep, utcnow
from tests.factories import make_instance


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
    """Notices on the change channel, as another process sees them: next() -> the next one's "<ids>" or "*"."""
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
                origin, _, notice = message["data"].decode().partition(" ")
                assert origin == changes.process_origin()
                return notice
        return None

    yield _next
    pubsub.close()
    client.close()


def _running_upgrade(db) -> Upgrade:
    upgrade = Upgrade(instance_id=make_instance().id, kind="release", status="running", to_tag="v2", actor="t",
                      started_at=utcnow())
    db.session.add(upgrade)
    db.session.flush()
    db.session.add(UpgradeStep(upgrade_id=upgrade.id, position=0, name="render", status="running"))
    db.session.commit()
    return upgrade


def test_commits_announce_the_changed_upgrades(db, notices):
    """ORM changes announce their upgrade ids after the commit; a bulk UPDATE names its upgrade when its WHERE
    does, else "*"; a rolled-back change announces nothing."""
    from ccp.extensions import get_redis

    get_redis()  # the app talks to Redis (a process that never did has nobody listening through it)
    upgrade = _running_upgrade(db)
    while (message := notices(timeout=0.3)) is not None:  # what creating it announced
        assert str(upgrade.id) in message.split() or message == "*"
    step = upgrade.steps[0]
    step.output_tail = "pulling"
    db.session.flush()
    assert notices(timeout=0.3) is None, "announced before the commit"
    db.session.commit()
    assert notices() == str(upgrade.id)

    db.session.execute(update(Upgrade).where(Upgrade.id == upgrade.id, Upgrade.status == "running")
                       .values(cancel_requested=True))
    db.session.commit()
    assert notices() == str(upgrade.id)
    db.session.execute(update(UpgradeStep).where(UpgradeStep.upgrade_id == upgrade.id).values(output_tail="x"))
    db.session.commit()
    assert notices() == str(upgrade.id)
    db.session.execute(update(Upgrade).where(Upgrade.status == "queued").values(error="swept"))
    db.session.commit()
    assert notices() == changes.EVERYTHING

    step.output_tail = "never committed"
    db.session.flush()
    db.session.rollback()
    db.session.commit()
    assert notices(timeout=0.5) is None


def test_feed_counts_notices_per_upgrade(redis_url):
    """A notice changes that upgrade's stamp only; "*" changes every stamp."""
    client = redis.Redis.from_url(redis_url)
    feed = changes.feed(client)
    _wait(feed.subscribed.is_set, what="the feed's subscription")
    one, two = feed.stamp(101), feed.stamp(102)
    client.publish(changes.CHANNEL, "another-process 101")
    _wait(lambda: feed.stamp(101) != one, what="notice for 101")
    assert feed.stamp(102) == two
    client.publish(changes.CHANNEL, "another-process *")
    _wait(lambda: feed.stamp(102) != two, what="notice for everything")
    three = feed.stamp(103)
    client.publish(changes.CHANNEL, f"{changes.process_origin()} 103")  # our own echo: applied at commit already
    client.publish(changes.CHANNEL, "another-process 104")
    _wait(lambda: feed.stamp(104) != feed.stamp(102), what="notice for 104")
    assert feed.stamp(103) == three
    assert changes.feed(client) is feed, "one feed per process and Redis server"
    client.close()


def test_feed_without_redis_asks_callers_to_read_the_database():
    """Nothing listening on the port: the feed never claims to be subscribed, so every stamp is None."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    feed = changes.ChangeFeed(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2))
    time.sleep(0.5)
    assert not feed.subscribed.is_set() and feed.stamp(1) is None
