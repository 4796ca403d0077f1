"""Change notices for upgrades, so the polled status widget can skip the database while nothing changed.

Every open upgrade page polls its widget once a second; most polls find the same rows as the last one (a verify
step waits for tens of seconds). Reading them anyway costs a database round trip per poll, and under load that
round trip is most of the request (bench/bench_status.py). So:

- Publishing: every committed change to an `Upgrade` or `UpgradeStep` - through the ORM in any process (web,
  worker, CLI) - is announced on the Redis channel `ccp:upgrade-changed` after the commit, as the upgrade ids.
  A bulk UPDATE/DELETE on those tables announces the upgrade its WHERE names, else "*" (everything may have
  changed). A notice is "<origin> <ids>": the committing process applies it to its own feed at once (it never
  sees its own change late) and ignores its echo.
- Listening: one `ChangeFeed` per process and Redis server (a daemon thread on a pub/sub connection) counts the
  notices per upgrade. `stamp(id)` is a value that changes whenever a notice for that upgrade (or "*") arrives
  and whenever the subscription is re-established (notices may have been missed meanwhile). While not subscribed,
  `stamp` is None and callers must read the database.

A caller reads `stamp` *before* reading the rows and may reuse those rows while the stamp is unchanged (and, as a
safety net for writes that bypass the ORM, for at most a few seconds; CCP_STATUS_REUSE_S). Writes that bypass
the session entirely (the runner's heartbeat on its own connection) are not announced: nothing shown depends on
them.

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
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList
from sqlalchemy.orm import ORMExecuteState, Session

CHANNEL = "ccp:upgrade-changed"
EVERYTHING = "*"
_PENDING = "ccp_changed_upgrades"  # Session.info key: ids changed by this transaction, announced at commit
log = logging.getLogger(__name__)


class ChangeFeed:
    """Counts change notices per upgrade id, from one Redis server, in a daemon thread of this process."""

    RETRY_MAX_S = 10.0

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._versions: dict[int, int] = {}
        self._generation = 0  # bumped on every (re)subscription and on "*": every earlier stamp becomes stale
        self.subscribed = threading.Event()
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="ccp-change-feed", daemon=True)
        self._thread.start()

    def stamp(self, upgrade_id: int) -> tuple[int, int] | None:
        """A value that differs from any earlier one once upgrade `upgrade_id` may have changed; None while this
        process cannot hear notices (the caller must read the database)."""
        if not self.subscribed.is_set():
            return None
        return self._generation, self._versions.get(upgrade_id, 0)

    def apply(self, message: str) -> None:
        """Count one notice: space-separated upgrade ids, or "*" for all."""
        ids = message.split()
        if EVERYTHING in ids:
            self._generation += 1
            return
        for token in ids:
            if token.isdigit():
                upgrade_id = int(token)
                self._versions[upgrade_id] = self._versions.get(upgrade_id, 0) + 1
        if len(self._versions) > 100_000:  # bounded: forget all (every stamp changes) rather than grow forever
            self._versions.clear()
            self._generation += 1

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
                        origin, _, notice = (data.decode() if isinstance(data, bytes) else str(data)).partition(" ")
                        if origin != process_origin():  # our own notices were applied when we committed
                            self.apply(notice)
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
    """This process's name on the channel (new after a fork): a notice is "<origin> <ids or *>"."""
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


def announce(ids: set[int] | set[str]) -> None:
    """Tell every process that these upgrades changed (call after the change is committed)."""
    client = current_app.extensions.get("ccp_redis")
    if client is None:  # this process never used Redis (e.g. a CLI command): nobody listens through it
        return
    notice = EVERYTHING if EVERYTHING in ids else " ".join(str(i) for i in sorted(ids))
    local = _running_feed(_server_of(client))
    if local is not None:
        local.apply(notice)  # our own change is visible to our own next poll, before the round trip
    try:
        client.publish(CHANNEL, f"{process_origin()} {notice}")
    except redis.RedisError as exc:
        log.warning("could not announce changed upgrades %s (%s); other processes may show them up to "
                    "CCP_STATUS_REUSE_S late", notice, exc.__class__.__name__)


def _pending(session: Session) -> set:
    return session.info.setdefault(_PENDING, set())


@event.listens_for(Session, "after_flush")
def _collect_flushed(session: Session, flush_context) -> None:
    from ccp.models import Instance, Upgrade, UpgradeStep

    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Instance) and obj in session.dirty:
            _pending(session).add(EVERYTHING)  # its name/slug is shown in its upgrades' widgets (rare: renames)
        elif isinstance(obj, Upgrade) and obj.id is not None:
            _pending(session).add(obj.id)
        elif isinstance(obj, UpgradeStep) and obj.upgrade_id is not None:
            _pending(session).add(obj.upgrade_id)


@event.listens_for(Session, "do_orm_execute")
def _collect_bulk(state: ORMExecuteState) -> None:
    """A bulk UPDATE/DELETE: the upgrade it names (`WHERE upgrades.id = X AND ...`), else "*"."""
    from ccp.models import Upgrade, UpgradeStep

    if not (state.is_update or state.is_delete) or state.bind_mapper is None:
        return
    column = {Upgrade: Upgrade.__table__.c.id, UpgradeStep: UpgradeStep.__table__.c.upgrade_id}.get(
        state.bind_mapper.class_)
    if column is not None:
        _pending(state.session).add(_named_id(state.statement.whereclause, column) or EVERYTHING)


def _named_id(where, column) -> int | None:
    """X when `where` is `column = X` or an AND of terms with one such term; otherwise None."""
    terms = where.clauses if isinstance(where, BooleanClauseList) and where.operator is operators.and_ else [where]
    for term in terms:
        if not (isinstance(term, BinaryExpression) and term.operator is operators.eq):
            continue
        left, right = term.left, term.right
        if getattr(left, "table", None) is column.table and left.key == column.key \
                and isinstance(right, BindParameter) and isinstance(right.value, int):
            return right.value
    return None


@event.listens_for(Session, "after_commit")
def _announce_committed(session: Session) -> None:
    ids = session.info.pop(_PENDING, None)
    if ids and has_app_context():
        announce(ids)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


def reuse_seconds() -> float:
    """How long rows read under an unchanged stamp may be reused at most (CCP_STATUS_REUSE_S)."""
    return current_app.config.get("CCP_STATUS_REUSE_S", 5.0)
