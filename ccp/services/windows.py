"""Maintenance windows and holds (issue #16): when CCP may upgrade a tenant by itself, and tenants pinned to their tag.

A *window* is a cron start (five fields, croniter syntax) and a length in minutes, read on the tenant's wall clock
(`window_timezone`, an IANA name; None = UTC). It opens at each start and closes `minutes` of wall-clock time later,
so "0 2 * * *" for 120 minutes in Europe/Berlin is 02:00-04:00 Berlin time all year; on the days the clocks change
it is an hour shorter or longer in real time, and a start inside the hour skipped in spring opens when the clocks
jump. A tenant without a window is always open.

A *hold* pins a tenant to the tag it runs: while it applies, rollouts and receivers skip the tenant and say why, and a
manual start needs a confirmation (a hold, not a lock). It applies while it has a reason and no `hold_until` (until
released by hand) or a `hold_until` still ahead; after that it simply stops applying (and is shown as expired).

Who may change them is decided at the edges (operator and up); the set/clear calls here validate, save and audit.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from croniter import croniter
from zoneinfo import ZoneInfo, available_timezones

from ccp.extensions import db
from ccp.models import as_utc, utcnow
from ccp.services.audit import record
from ccp.services.errors import ServiceError

CRON_MAX = 100
MAX_MINUTES = 1440  # a window longer than a day would be open for good: no window says that better
MAX_REASON = 500  # the column's size
MERGE_LIMIT = 200  # overlapping windows (an hourly start open for 2 h) are one long window; look this many starts on
# Zones offered first in the pickers (any IANA name is accepted): UTC and the zones most fleets run in.
COMMON_ZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Amsterdam",
    "Europe/Madrid", "Europe/Rome", "Europe/Vienna", "Europe/Zurich", "Europe/Stockholm", "Europe/Warsaw",
    "Europe/Prague", "Europe/Helsinki", "Europe/Athens", "Europe/Istanbul", "Europe/Kyiv", "Europe/Moscow",
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "America/Toronto", "America/Vancouver", "America/Mexico_City", "America/Sao_Paulo",
    "America/Buenos_Aires", "America/Bogota", "Pacific/Honolulu", "Africa/Johannesburg", "Africa/Lagos",
    "Africa/Cairo", "Africa/Nairobi", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai",
    "Asia/Hong_Kong", "Asia/Tokyo", "Asia/Seoul", "Asia/Jakarta", "Australia/Perth", "Australia/Sydney",
    "Australia/Melbourne", "Pacific/Auckland",
)


class WindowInvalid(ServiceError):
    """A window or hold that cannot be saved: `details` maps each bad field (cron, minutes, timezone, reason, until)
    to what is wrong; nothing was changed."""

    status, code = 422, "validation_failed"


@dataclass(frozen=True)
class Window:
    """A maintenance window: starts when `cron` fires on the wall clock of `timezone` (None: UTC), `minutes` long."""

    cron: str
    minutes: int
    timezone: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")

    @property
    def zone_name(self) -> str:
        return self.timezone or "UTC"

    @property
    def label(self) -> str:
        """'daily 02:00–04:00 Europe/Berlin', 'Mon–Fri 22:30–00:30 UTC', or the cron itself for other shapes."""
        minute, hour, dom, month, dow = self.cron.split()
        if not (minute.isdigit() and hour.isdigit()):
            return f"cron {self.cron}, {self.minutes} min each ({self.zone_name})"
        start = datetime(2000, 1, 1, int(hour), int(minute))
        span = f"{start:%H:%M}–{start + timedelta(minutes=self.minutes):%H:%M}"
        if dom == "*" and month == "*":
            days = _DAYS.get(dow.lower())
            if days:
                return f"{days} {span} {self.zone_name}"
        return f"{span} {self.zone_name} when cron {self.cron} fires"


_DAYS = {"*": "daily", "1-5": "Mon–Fri", "mon-fri": "Mon–Fri", "0,6": "Sat–Sun", "6,0": "Sat–Sun", "6-7": "Sat–Sun",
         "sat,sun": "Sat–Sun", "0": "Sun", "7": "Sun", "1": "Mon", "2": "Tue", "3": "Wed", "4": "Thu", "5": "Fri",
         "6": "Sat", "sun": "Sun", "mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat"}


@dataclass(frozen=True)
class WindowState:
    """Whether a tenant's window is open at `now`; `ends_at` (while open) and `next_open` are aware UTC datetimes.

    Without a window the tenant is always open (`window` None, both times None)."""

    window: Window | None
    open: bool
    ends_at: datetime | None = None
    next_open: datetime | None = None


@dataclass(frozen=True)
class Hold:
    """A tenant pinned to its tag: why, until when (None: until released by hand), by whom."""

    reason: str
    until: datetime | None
    by: str | None

    def active(self, now: datetime | None = None) -> bool:
        """True while it applies: no end, or an end still ahead of `now`."""
        return self.until is None or as_utc(self.until) > (now or utcnow())

    @property
    def sentence(self) -> str:
        """'held until 2026-12-01 00:00 UTC by user:ann: DB migration freeze' (what rollouts and receivers say)."""
        until = f"until {as_utc(self.until):%Y-%m-%d %H:%M} UTC" if self.until else "until released"
        by = f" by {self.by}" if self.by else ""
        return f"held {until}{by}: {self.reason}"


def window_of(instance) -> Window | None:
    """The instance's window, or None (always open)."""
    if not instance.window_cron:
        return None
    return Window(instance.window_cron, instance.window_minutes or 60, instance.window_timezone)


def hold_of(instance) -> Hold | None:
    """The instance's hold as recorded, expired or not (None: never held, or released)."""
    if not instance.hold_reason:
        return None
    return Hold(instance.hold_reason, as_utc(instance.hold_until) if instance.hold_until else None, instance.hold_by)


def active_hold(instance, now: datetime | None = None) -> Hold | None:
    """The instance's hold while it applies at `now` (default: the current time), else None."""
    hold = hold_of(instance)
    return hold if hold is not None and hold.active(now) else None


def window_state(instance, now: datetime | None = None) -> WindowState:
    """Whether the instance may be upgraded by CCP at `now` (aware; default the current time), computed on the
    tenant's wall clock, and when its window ends or next opens."""
    return state_at(window_of(instance), now or utcnow())


def state_at(window: Window | None, now: datetime) -> WindowState:
    """`window_state` for a Window (None: always open)."""
    if window is None:
        return WindowState(None, True)
    now = as_utc(now)
    zone = window.zone
    local = now.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    last_start = croniter(window.cron, local + timedelta(minutes=1)).get_prev(datetime)
    span = _span(window, zone, last_start)
    ahead = croniter(window.cron, local)
    if span[0] <= now < span[1]:
        end = span[1]
        for _ in range(MERGE_LIMIT):  # overlapping windows: open until the last of them ends
            following = _span(window, zone, ahead.get_next(datetime))
            if following[0] > end:
                return WindowState(window, True, ends_at=end, next_open=following[0])
            end = max(end, following[1])
        return WindowState(window, True, ends_at=end)
    for _ in range(MERGE_LIMIT):
        start, end = _span(window, zone, ahead.get_next(datetime))
        if start > now:
            return WindowState(window, False, next_open=start)
        if now < end:  # a start pushed back by a clock change: already open
            return WindowState(window, True, ends_at=end)
    return WindowState(window, False)


def _span(window: Window, zone: ZoneInfo, local_start: datetime) -> tuple[datetime, datetime]:
    """A window's start and end in UTC from its naive wall-clock start (a time the clocks skip resolves with the
    offset before the change, i.e. to the moment they jump; a repeated time to its first occurrence)."""
    start = local_start.replace(tzinfo=zone).astimezone(timezone.utc)
    end = (local_start + timedelta(minutes=window.minutes)).replace(tzinfo=zone).astimezone(timezone.utc)
    return start, max(end, start + timedelta(minutes=1))


def local_label(when: datetime | None, zone_name: str | None) -> str:
    """'Tue 02:00 Europe/Berlin' (within a week of now) or '2026-12-01 02:00 Europe/Berlin'."""
    if when is None:
        return "never"
    zone_name = zone_name or "UTC"
    local = as_utc(when).astimezone(ZoneInfo(zone_name))
    soon = abs((as_utc(when) - utcnow()).total_seconds()) < 6 * 86400
    return f"{local:%a %H:%M} {zone_name}" if soon else f"{local:%Y-%m-%d %H:%M} {zone_name}"


@functools.lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """Every IANA time zone name this machine knows (the system's zone database, or the tzdata package)."""
    return frozenset(available_timezones())


def check_window(cron, minutes, timezone_name) -> Window:
    """The window as it would be saved; raises WindowInvalid naming every bad field (cron, minutes, timezone)."""
    errors = {}
    cron = cron.strip() if isinstance(cron, str) else cron
    if not isinstance(cron, str) or not cron:
        errors["cron"] = "required: five cron fields (minute hour day month weekday), e.g. 0 2 * * *"
    elif len(cron) > CRON_MAX or len(cron.split()) != 5:
        errors["cron"] = "five fields: minute hour day month weekday, e.g. 0 2 * * * (daily at 02:00)"
    elif not croniter.is_valid(cron):
        errors["cron"] = f"not a cron expression: {cron[:CRON_MAX]!r}"
    else:
        cron = " ".join(cron.split())
        try:
            croniter(cron, datetime(2000, 1, 1)).get_next(datetime)
        except Exception:  # noqa: BLE001 - croniter's "never fires" errors have no common base worth naming
            errors["cron"] = f"{cron!r} never fires"
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_MINUTES:
        errors["minutes"] = f"a whole number of minutes from 1 to {MAX_MINUTES}"
    if timezone_name in ("", None):
        timezone_name = None
    elif not isinstance(timezone_name, str) or timezone_name not in known_zones():
        shown = timezone_name[:64] if isinstance(timezone_name, str) else type(timezone_name).__name__
        errors["timezone"] = f"not an IANA time zone name: {shown!r} (e.g. Europe/Berlin, America/New_York, UTC)"
    if errors:
        raise WindowInvalid("invalid maintenance window: " + ", ".join(sorted(errors)), errors)
    return Window(cron, minutes, None if timezone_name == "UTC" else timezone_name)


def set_window(instance, cron, minutes, timezone_name, *, actor: str) -> Window:
    """Give the instance a maintenance window (replacing any); WindowInvalid (nothing saved) on bad fields."""
    window = check_window(cron, minutes, timezone_name)
    before = window_of(instance)
    instance.window_cron, instance.window_minutes, instance.window_timezone = (
        window.cron, window.minutes, window.timezone)
    db.session.commit()
    record(actor, "instance.window.set", instance=instance,
           detail={"cron": window.cron, "minutes": window.minutes, "timezone": window.zone_name,
                   "before": before.label if before else None})
    return window


def clear_window(instance, *, actor: str) -> None:
    """Remove the instance's window: CCP may upgrade it at any time again."""
    before = window_of(instance)
    instance.window_cron = instance.window_minutes = instance.window_timezone = None
    db.session.commit()
    record(actor, "instance.window.clear", instance=instance, detail={"before": before.label if before else None})


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # JSON may carry one ("\ud800"); no database can store it


def check_hold(reason, until, now: datetime | None = None) -> tuple[str, datetime | None]:
    """A hold's reason (trimmed) and end (aware UTC, or None: until released); raises WindowInvalid naming the bad
    fields: the reason is required (1-500 characters, one line), the end must be ahead of now."""
    errors = {}
    reason = reason.strip() if isinstance(reason, str) else reason
    if not isinstance(reason, str) or not reason:
        errors["reason"] = "required: say why the tenant is held (people and receivers read it)"
    elif len(reason) > MAX_REASON or _CONTROL.search(reason) or _SURROGATE.search(reason):
        errors["reason"] = f"one line of at most {MAX_REASON} characters (of text: no lone surrogates)"
    if until is not None:
        if not isinstance(until, datetime) or until.tzinfo is None:
            errors["until"] = "a date and time with its UTC offset, e.g. 2026-12-01T08:00:00+01:00"
        elif as_utc(until) <= (now or utcnow()):
            errors["until"] = "must be in the future (leave it out to hold until released by hand)"
    if errors:
        raise WindowInvalid("invalid hold: " + ", ".join(sorted(errors)), errors)
    return reason, as_utc(until).astimezone(timezone.utc) if until is not None else None


def parse_until(text, zone_name: str | None = None) -> datetime | None:
    """An end typed as ISO 8601 ('2026-12-01T08:00', '2026-12-01T08:00+01:00' or '2026-12-01'); a time without an
    offset is read on the tenant's wall clock (`zone_name`), a date alone as 00:00 of that day. '' -> None.
    Raises WindowInvalid({"until": ...}) when it does not parse."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        if not isinstance(text, str):
            raise ValueError
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowInvalid("invalid hold: until", {"until": "a date and time such as 2026-12-01T08:00"}) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone_name or "UTC"))
    return value


def set_hold(instance, reason, until: datetime | None = None, *, actor: str) -> Hold:
    """Hold the instance at its tag with `reason` until `until` (None: until released); replaces any hold.
    WindowInvalid (nothing saved) on a missing reason or an end in the past."""
    reason, until = check_hold(reason, until)
    instance.hold_reason, instance.hold_until, instance.hold_by = reason, until, actor[:200]  # the column's size
    db.session.commit()
    record(actor, "instance.hold.set", instance=instance,
           detail={"reason": reason, "until": until.isoformat() if until else None, "tag": instance.image_tag})
    return Hold(reason, until, instance.hold_by)


def clear_hold(instance, *, actor: str) -> None:
    """Release the instance's hold (an expired one too: it is then forgotten)."""
    before = hold_of(instance)
    instance.hold_reason = instance.hold_until = instance.hold_by = None
    db.session.commit()
    record(actor, "instance.hold.clear", instance=instance,
           detail={"was": before.sentence if before else None})
