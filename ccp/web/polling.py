"""The polled status path's one cache (PollCache): what this process may hand out again instead of redoing it.

Kept honest by the upgrade change notices of ccp.services.changes (the widget entries) and by short time bounds (the
user and cookie entries). Used by the status view (ccp.web.upgrades), the polled-view user check (ccp.web.auth) and
the session cookie loader (ccp.web.security).
"""

from __future__ import annotations

import math
import time

from flask import current_app


class PollCache:
    """The one cache of the polled status path: results this process may hand out again instead of redoing them,
    per app, at most KEPT entries (when full, all are dropped; what is still being polled comes back at once).

    What it buys, measured with bench/bench_status.py (gunicorn 1 worker x 4 threads, wrk 8 connections, SQLite;
    median of 6 alternating rounds, each kind switched off in turn against the same bare endpoint): the widget
    answers at 64% of the bare endpoint with all three kinds of entry (goal >= 60%); without one of them it falls
    below the goal:
    - ("widget", upgrade id, can operate, script root) -> (stamp, markup, final): no database read and no render
      while the upgrade's change stamp (ChangeFeed) is unchanged, for at most CCP_STATUS_REUSE_S (5 s).
      Without it: 35%. Wrong for a change nobody announced (a write by hand in SQL, an instance renamed or deleted,
      a notice lost while Redis was away): shown up to CCP_STATUS_REUSE_S late. Everything the markup shows must
      come from the upgrade's rows or the key.
    - ("user", user id) -> (user, session epoch): a polled GET (ccp.web.auth.polled_view) reuses this process's
      check of the user for at most CCP_USER_RECHECK_S (2 s); every other request checks the database and
      refreshes it. Without it: 46%. Wrong for a user deactivated, demoted or logged out by *another* process:
      their polled widget keeps answering for up to that long.
    - ("cookie", secret keys, cookie) -> session values: a session cookie seen again byte for byte within
      CCP_USER_RECHECK_S is not verified and decoded again (ccp.web.security); only sessions of plain values are kept,
      so no request can change what the next one starts from. Without it: 51%. Wrong only at the end of the
      session lifetime (31 days): a cookie verified just before it expired is accepted up to 2 s longer.
    """

    KEPT = 4096

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple[float, object]] = {}

    def get(self, key: tuple, max_age_s: float = math.inf):
        """What was kept under `key` less than `max_age_s` seconds ago, else None."""
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < max_age_s:
            return entry[1]
        return None

    def put(self, key: tuple, value) -> None:
        """Keep `value` under `key`, as of now."""
        if len(self._entries) >= self.KEPT:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)

    def forget(self, key: tuple) -> None:
        """Drop what is kept under `key` (the next request does the work again)."""
        self._entries.pop(key, None)


def poll_cache(app=None) -> PollCache:
    """The PollCache of `app` (default: the current app)."""
    extensions = (app or current_app).extensions
    cache = extensions.get("ccp_poll_cache")
    if cache is None:
        cache = extensions.setdefault("ccp_poll_cache", PollCache())
    return cache


def recheck_seconds(app=None) -> float:
    """How long this process's check of a session cookie, and (for polled views) of its user, may be reused
    (CCP_USER_RECHECK_S, default 2)."""
    return (app or current_app).config.get("CCP_USER_RECHECK_S", 2.0)


def reuse_seconds() -> float:
    """How long a widget rendered under an unchanged stamp may be reused at most (CCP_STATUS_REUSE_S)."""
    return current_app.config["CCP"].status_reuse_s
