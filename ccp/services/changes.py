"""The polled status path's reuse: change notices for upgrades, and the one per-process cache they keep honest.

Every open upgrade page polls its status widget once a second; most polls find nothing new (a verify step waits for
tens of seconds). bench/bench_status.py measures that path against a bare Flask endpoint; `PollCache` says what
each kind of reuse buys there.

- Announcing: the code that commits a change to an upgrade or its steps calls `announce(upgrade_id)` right after
  the commit (the runner, the reaper, enqueue and cancel in ccp.services.upgrades). That publishes
  "<origin> <install> <id>" on the Redis channel `ccp:upgrade-changed` (install: CCP_QUEUE, so installs and test
  runs sharing a Redis server do not stir each other's widgets); the announcing process counts it in its own feed
  at once and ignores its echo. The runner's heartbeat is not announced: nothing shown depends on it.
- Listening: one `ChangeFeed` per process and Redis server (a daemon thread on a pub/sub connection) counts the
  notices per topic ("<install> <id>"). `stamp(id)` changes whenever a notice for that upgrade arrives and whenever
  the subscription is re-established (notices may have been missed meanwhile). While not subscribed, it is None
  and nothing may be reused.

Announced by the services; read by the polled status view (ccp.web.upgrades), whose one cache is
ccp.web.polling.PollCache.
Hand-written because Redis pub/sub is the transport we already run; no library offers "invalidate a per-process
cache when a row changes" for Flask-SQLAlchemy without a second broker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

import redis
from flask import current_app

CHANNEL = "ccp:upgrade-changed"
log = logging.getLogger(__name__)


class ChangeFeed:
    """Counts change notices per topic ("<install> <upgrade id>"), from one Redis server, in a daemon thread of this
    process."""

    RETRY_MAX_S = 10.0
    KEPT = 100_000  # topics counted; past that all are forgotten (every stamp changes) rather than grow

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._versions: dict[str, int] = {}
        self._generation = 0  # bumped on every (re)subscription: every earlier stamp becomes stale
        self.subscribed = threading.Event()
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="ccp-change-feed", daemon=True)
        self._thread.start()

    def stamp(self, topic: str) -> tuple[int, int] | None:
        """A value that differs from any earlier one once what `topic` names may have changed; None while this
        process cannot hear notices (the caller must read the database)."""
        if not self.subscribed.is_set():
            return None
        return self._generation, self._versions.get(topic, 0)

    def apply(self, topic: str) -> None:
        """Count one notice for `topic`."""
        if len(self._versions) >= self.KEPT:
            self._versions.clear()
            self._generation += 1
        self._versions[topic] = self._versions.get(topic, 0) + 1

    def _run(self) -> None:
        wait = 0.5
        while True:
            pubsub = self._client.pubsub()
            try:
                pubsub.subscribe(CHANNEL)
                while True:
                    message = pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._generation += 1  # notices sent while we were not listening are lost
                        self.subscribed.set()
                        wait = 0.5
                    elif message["type"] == "message":
                        data = message["data"]
                        origin, _, topic = (data.decode() if isinstance(data, bytes) else str(data)).partition(" ")
                        if origin != process_origin():  # our own notices were counted when announced
                            self.apply(topic)
            except Exception as exc:  # noqa: BLE001 - any failure: fall back to the database, retry later
                if self.subscribed.is_set():
                    log.warning("upgrade change notices lost (%s); status polls read the database until back",
                                exc.__class__.__name__)
                self.subscribed.clear()
                time.sleep(wait)
                wait = min(wait * 2, self.RETRY_MAX_S)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - the connection is already gone
                    pass


_origin: tuple[int, str] = (0, "")


def process_origin() -> str:
    """This process's name on the channel (new after a fork): a notice is "<origin> <install> <upgrade id>"."""
    global _origin
    if _origin[0] != os.getpid():
        _origin = (os.getpid(), uuid.uuid4().hex[:16])
    return _origin[1]


_feeds: dict[tuple, ChangeFeed] = {}
_feeds_lock = threading.Lock()


def _server_of(client: redis.Redis) -> tuple:
    """Which Redis server a client talks to (channels are server-wide, whatever the database number)."""
    kwargs = client.connection_pool.connection_kwargs
    return kwargs.get("path") or kwargs.get("host"), kwargs.get("port")


def _running_feed(key: tuple) -> ChangeFeed | None:
    """This process's feed for that server, if one runs (a feed inherited through a fork has no thread)."""
    current = _feeds.get(key)
    return current if current is not None and current.pid == os.getpid() else None


def feed(client: redis.Redis) -> ChangeFeed:
    """This process's feed for the client's Redis server, started on first use (and again after a fork)."""
    key = _server_of(client)
    current = _running_feed(key)
    if current is None:
        with _feeds_lock:
            current = _running_feed(key)
            if current is None:
                current = _feeds[key] = ChangeFeed(client)
    return current


def current_feed() -> ChangeFeed:
    """The feed for the current app's Redis."""
    from ccp.extensions import get_redis

    return feed(get_redis())


def topic(upgrade_id: int) -> str:
    """What a notice about this upgrade of the current app's install names: "<CCP_QUEUE> <id>"."""
    return f"{current_app.config['CCP'].queue_name} {upgrade_id}"


def stamp(upgrade_id: int) -> tuple[int, int] | None:
    """The current app's stamp for this upgrade (ChangeFeed.stamp): read it before reading the upgrade."""
    return current_feed().stamp(topic(upgrade_id))


def announce(upgrade_id: int) -> None:
    """Tell every process that this upgrade (or one of its steps) changed. Call it after the commit.

    Never raises: a lost announcement shows the change up to CCP_STATUS_REUSE_S late (logged)."""
    client = current_app.extensions.get("ccp_redis")
    if client is None:  # this process never used Redis (e.g. a CLI command): nobody listens through it
        return
    named = topic(upgrade_id)
    local = _running_feed(_server_of(client))
    if local is not None:
        local.apply(named)  # our own change is visible to our own next poll, before the round trip
    try:
        client.publish(CHANNEL, f"{process_origin()} {named}")
    except redis.RedisError as exc:
        log.warning("could not announce a change of upgrade %s (%s); other processes may show it up to "
                    "CCP_STATUS_REUSE_S late", upgrade_id, exc.__class__.__name__)
