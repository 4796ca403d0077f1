"""Notifications through Apprise: channels (URL encrypted, shown only as Apprise's privacy form), the events each
wants, batched messages, and their delivery by an RQ job with retries, recorded in the audit log.

Batching: a scan run sends one message per channel when it ends (drift found, update available, agents unreachable
for longer than the channel's threshold); upgrades and rollouts that ended are gathered by the worker's housekeeping
(`collect_ended`) into one message per channel and pass, a rollout's failed upgrades inside its own line. Messages
carry slugs, tags, file paths and counts only: never an error text from a tenant, never a value.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import apprise
from rq import Retry
from sqlalchemy import select, update

from ccp.extensions import db, get_queue
from ccp.models import NOTIFY_EVENTS, Instance, NotificationChannel, Rollout, ScanRun, Upgrade, as_utc, utcnow
from ccp.services.audit import record
from ccp.services.errors import ServiceError

log = logging.getLogger(__name__)
logging.getLogger("apprise").setLevel(logging.WARNING)  # its debug lines print the URLs it posts to

EVENT_LABELS = {
    "upgrade.failed": "Upgrade failed", "upgrade.rolled_back": "Upgrade rolled back",
    "upgrade.rollback_failed": "Rollback failed", "rollout.halted": "Rollout halted",
    "rollout.finished": "Rollout finished", "scan.drift": "Drift found", "scan.update_available": "Update available",
    "agent.unreachable": "Agent unreachable",
}
URL_MAX = 2000
RETRY = Retry(max=3, interval=[5, 30, 120])
LISTED = 20


class ChannelInvalid(ServiceError):
    status, code = 422, "invalid_channel"


class ChannelNotFound(ServiceError):
    status, code = 404, "not_found"


def url_hint(url: str) -> str:
    """What of an Apprise URL may be shown: Apprise's privacy form (tokens and passwords masked), no query."""
    plugin = apprise.Apprise.instantiate(url)
    return (plugin.url(privacy=True).split("?", 1)[0] if plugin else "?")[:100]


def _checked(name, url, events, unreachable_after_s, *, creating: bool) -> dict:
    errors, out = {}, {}
    if name is not None or creating:
        name = name.strip() if isinstance(name, str) else ""
        if not name or len(name) > 63 or not _plain(name):
            errors["name"] = "a name of 1 to 63 printable characters"
        out["name"] = name
    if url is not None or creating:
        if not isinstance(url, str) or not url.strip() or len(url) > URL_MAX or not _plain(url) or \
                apprise.Apprise.instantiate(url.strip()) is None:
            errors["url"] = "an Apprise URL Apprise understands (e.g. json://host/path, mailto://..., tgram://...)"
        else:
            out["url"] = url.strip()
    if events is not None or creating:
        events = list(events or ()) if isinstance(events, (list, tuple)) else None
        if events is None or any(not isinstance(e, str) or e not in NOTIFY_EVENTS for e in events):
            errors["events"] = f"events among {', '.join(NOTIFY_EVENTS)}"
        else:
            out["events"] = sorted(set(events), key=NOTIFY_EVENTS.index)
    if unreachable_after_s is not None:
        if not isinstance(unreachable_after_s, int) or isinstance(unreachable_after_s, bool) \
                or not 60 <= unreachable_after_s <= 30 * 86400:
            errors["unreachable_after_s"] = "seconds between 60 and 2592000"
        else:
            out["unreachable_after_s"] = unreachable_after_s
    if errors:
        raise ChannelInvalid("the channel is not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
    return out


def _plain(text: str) -> bool:
    """Printable and encodable (no control characters, no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return text.isprintable()


def list_channels() -> list[NotificationChannel]:
    """Every channel, by name."""
    return list(db.session.execute(select(NotificationChannel).order_by(NotificationChannel.name)).scalars())


def get_channel(channel_id: int) -> NotificationChannel:
    """The channel with this id; raises ChannelNotFound."""
    channel = db.session.get(NotificationChannel, channel_id)
    if channel is None:
        raise ChannelNotFound(f"no notification channel #{channel_id}")
    return channel


def create_channel(name, url, events, *, unreachable_after_s=None, actor: str) -> NotificationChannel:
    """Add a channel (URL encrypted); audited by name and hint only. Raises ChannelInvalid (nothing saved)."""
    data = _checked(name, url, events, unreachable_after_s, creating=True)
    if db.session.execute(select(NotificationChannel.id).filter_by(name=data["name"])).first():
        raise ChannelInvalid(f"a channel named {data['name']} exists", {"name": "already taken"})
    channel = NotificationChannel(name=data["name"], url_hint=url_hint(data["url"]), events=data["events"],
                                  unreachable_after_s=data.get("unreachable_after_s", 3600), enabled=True)
    channel.set_url(data["url"])
    db.session.add(channel)
    db.session.commit()
    record(actor, "channel.create", target=f"channel:{channel.name}",
           detail={"hint": channel.url_hint, "events": channel.events})
    return channel


def update_channel(channel_id: int, *, name=None, url=None, events=None, enabled=None, unreachable_after_s=None,
                   actor: str) -> NotificationChannel:
    """Change what is given (a URL left out keeps the stored one); audited. Raises ChannelInvalid/NotFound."""
    channel = get_channel(channel_id)
    data = _checked(name, url, events, unreachable_after_s, creating=False)
    if enabled is not None and not isinstance(enabled, bool):
        raise ChannelInvalid("enabled must be true or false", {"enabled": "true or false"})
    if "name" in data and data["name"] != channel.name and \
            db.session.execute(select(NotificationChannel.id).filter_by(name=data["name"])).first():
        raise ChannelInvalid(f"a channel named {data['name']} exists", {"name": "already taken"})
    for key in ("name", "events", "unreachable_after_s"):
        if key in data:
            setattr(channel, key, data[key])
    if "url" in data:
        channel.set_url(data["url"])
        channel.url_hint = url_hint(data["url"])
    if enabled is not None:
        channel.enabled = enabled
    db.session.commit()
    record(actor, "channel.update", target=f"channel:{channel.name}",
           detail={"changed": sorted([*data, *(["enabled"] if enabled is not None else [])])})
    return channel


def delete_channel(channel_id: int, *, actor: str) -> None:
    """Remove a channel; audited."""
    channel = get_channel(channel_id)
    name = channel.name
    db.session.delete(channel)
    db.session.commit()
    record(actor, "channel.delete", target=f"channel:{name}")


def send_test(channel_id: int, *, actor: str) -> str:
    """Queue a test message to one channel (delivered by the job like any other); returns the job id."""
    channel = get_channel(channel_id)
    record(actor, "channel.test", target=f"channel:{channel.name}")
    return _enqueue(channel.id, "CCP test notification",
                    f"This channel ({channel.name}) receives CCP notifications. Sent by {actor}.", ["test"])


def queue_scan_notification(run_id: int) -> int:
    """Queue the batched message of a finished scan run to every enabled channel that wants one of its findings;
    returns how many were queued (a channel with nothing to hear gets nothing)."""
    run = db.session.get(ScanRun, run_id)
    if run is None or not run.summary:
        return 0
    now, queued = utcnow(), 0
    for channel in list_channels():
        if not channel.enabled:
            continue
        lines, events = _scan_lines(run.summary, channel, now)
        if lines:
            _enqueue(channel.id, f"CCP scan #{run.id}: " + ", ".join(EVENT_LABELS[e].lower() for e in events),
                     "\n".join(lines), events)
            queued += 1
    return queued


def _scan_lines(summary: dict, channel: NotificationChannel, now) -> tuple[list[str], list[str]]:
    """What a scan tells one channel: what is new since the previous scan of its kind (a tenant that stays drifted
    is told once, again when its drifted files change), and agents whose time unreachable crossed the channel's
    threshold since the previous scan."""
    lines, events, wants = [], [], set(channel.events)
    drifted, updates = summary.get("new_drifted_list") or [], summary.get("new_updates_list") or []
    if "scan.drift" in wants and drifted:
        events.append("scan.drift")
        lines.append(f"Drifted ({len(drifted)}):")
        lines += [f"- {d['slug']}: {', '.join(d['files'])}" for d in drifted[:LISTED]]
        lines += [f"- and {len(drifted) - LISTED} more"] if len(drifted) > LISTED else []
    if "scan.update_available" in wants and updates:
        events.append("scan.update_available")
        lines.append(f"Update available ({len(updates)}): " + ", ".join(
            u["slug"] + (f" (newest {u['newest']})" if u.get("newest") else "") for u in updates[:LISTED]))
    if "agent.unreachable" in wants:
        previous = _when(summary.get("previous_run_at"))
        crossed = []
        for u in summary.get("unreachable_list") or ():
            due = _when(u["since"]) + timedelta(seconds=channel.unreachable_after_s)
            if due <= now and (previous is None or due > previous):
                crossed.append(u["slug"])
        if crossed:
            events.append("agent.unreachable")
            lines.append(f"Agents unreachable for over {channel.unreachable_after_s // 60} min "
                         f"({len(crossed)}): " + ", ".join(crossed[:LISTED]))
    return lines, events


def _when(text: str | None):
    return as_utc(datetime.fromisoformat(text)) if text else None


UPGRADE_EVENTS = {"failed": "upgrade.failed", "rolled_back": "upgrade.rolled_back",
                  "rollback_failed": "upgrade.rollback_failed"}
ROLLOUT_EVENTS = {"halted": "rollout.halted", "succeeded": "rollout.finished", "cancelled": "rollout.finished"}


def collect_ended(now=None) -> int:
    """For each enabled channel, claim the upgrades and rollouts that ended since its last pass and queue one
    message with those it wants; returns how many messages were queued. Safe with several workers (the claim is
    one conditional UPDATE)."""
    now, queued = now or utcnow(), 0
    for channel in list_channels():
        wanted = set(channel.events) & {*UPGRADE_EVENTS.values(), *ROLLOUT_EVENTS.values()}
        if not channel.enabled or not wanted:
            continue
        since = channel.events_since
        claimed = db.session.execute(update(NotificationChannel)
                                     .where(NotificationChannel.id == channel.id,
                                            NotificationChannel.events_since == since)
                                     .values(events_since=now)).rowcount
        db.session.commit()
        if claimed != 1:
            continue
        lines, events = _ended_lines(since, now, wanted)
        if lines:
            _enqueue(channel.id, "CCP: " + ", ".join(EVENT_LABELS[e].lower() for e in events), "\n".join(lines),
                     events)
            queued += 1
    return queued


def _ended_lines(since, now, wanted: set[str]) -> tuple[list[str], list[str]]:
    rollouts = db.session.execute(select(Rollout).where(Rollout.finished_at > since, Rollout.finished_at <= now,
                                                        Rollout.status.in_(ROLLOUT_EVENTS))
                                  .order_by(Rollout.id)).scalars().all()
    ups = db.session.execute(
        select(Upgrade.rollout_id, Upgrade.status, Upgrade.to_tag, Upgrade.from_tag, Upgrade.id, Instance.slug)
        .join(Instance, Instance.id == Upgrade.instance_id)
        .where(Upgrade.finished_at > since, Upgrade.finished_at <= now, Upgrade.status.in_(UPGRADE_EVENTS))
        .order_by(Upgrade.id)).all()
    lines, events = [], []
    for rollout in rollouts:
        event = ROLLOUT_EVENTS[rollout.status]
        failed = [u for u in ups if u.rollout_id == rollout.id]
        if event in wanted:
            events.append(event)
            extra = f"; {len(failed)} upgrade(s) did not succeed: " + ", ".join(
                f"{u.slug} ({u.status})" for u in failed[:LISTED]) if failed else ""
            lines.append(f"Rollout #{rollout.id} to {rollout.tag}: {rollout.status}{extra}")
    lines += _agent_update_lines(since, now, wanted, events)
    in_rollouts = {r.id for r in rollouts}
    for u in ups:
        event = UPGRADE_EVENTS[u.status]
        if event in wanted and (u.rollout_id is None or u.rollout_id not in in_rollouts):
            events.append(event)
            lines.append(f"{EVENT_LABELS[event]}: {u.slug} #{u.id} ({u.from_tag or '?'} -> {u.to_tag or '?'})")
    return lines, sorted(set(events), key=list(NOTIFY_EVENTS).index)


def _agent_update_lines(since, now, wanted: set[str], events: list[str]) -> list[str]:
    """Agent updates (ccp.services.agent_updates) that ended count as rollouts: halted, or finished."""
    from ccp.models import AgentRollout, AgentUpdate

    lines = []
    for rollout in db.session.execute(select(AgentRollout).where(
            AgentRollout.finished_at > since, AgentRollout.finished_at <= now,
            AgentRollout.status.in_(ROLLOUT_EVENTS)).order_by(AgentRollout.id)).scalars():
        event = ROLLOUT_EVENTS[rollout.status]
        if event in wanted:
            events.append(event)
            failed = db.session.execute(select(AgentUpdate.agent_url).where(
                AgentUpdate.rollout_id == rollout.id, AgentUpdate.status == "failed")).scalars().all()
            extra = f"; {len(failed)} agent(s) did not come back on it: " + ", ".join(failed[:LISTED]) if failed else ""
            lines.append(f"Agent update #{rollout.id} to {rollout.target_version}: {rollout.status}{extra}")
    return lines


def _enqueue(channel_id: int, title: str, body: str, events: list[str]) -> str:
    job = get_queue().enqueue("ccp.jobs.deliver_notification", channel_id, title, body, events, retry=RETRY,
                              job_timeout=60, description=f"notification to channel #{channel_id}")
    return job.id


def deliver(channel_id: int, title: str, body: str, events: list[str]) -> bool:
    """Send one message through Apprise; audited either way. Raises (so RQ retries) when the service refused."""
    channel = db.session.get(NotificationChannel, channel_id)
    if channel is None or not channel.enabled:
        return False
    sender = apprise.Apprise()
    sender.add(channel.url())
    ok = sender.notify(title=title, body=body)
    if ok:
        channel.last_sent_at, channel.last_error = utcnow(), None
    else:
        channel.last_error = "the service did not accept the message (see the worker's log)"
    db.session.commit()
    record("system", "notify.sent" if ok else "notify.failed", target=f"channel:{channel.name}",
           result="ok" if ok else "failed", detail={"events": events, "title": title})
    if not ok:
        raise RuntimeError(f"notification to channel {channel.name} was not delivered")
    return True
