"""How a tenant's maintenance window and hold read on its page: the header badges and the Settings tab's
Maintenance forms (values shown, time zone choices). Shaped here so the templates hold no logic; the rules are in
ccp.services.windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from zoneinfo import ZoneInfo

from ccp.models import as_utc, utcnow
from ccp.services import windows


@dataclass(frozen=True)
class MaintenanceView:
    """A tenant's window and hold as sentences. `window_text` and `hold_text` are None when there is none."""

    window_label: str | None = None  # 'daily 02:00–04:00 Europe/Berlin'
    window_open: bool = True
    window_text: str | None = None  # 'open now, closes 04:00 (in 40 min)' / 'opens Tue 02:00 Europe/Berlin (in 3 h)'
    hold_active: bool = False
    hold_text: str | None = None  # 'Held until 2026-12-01 09:00 Europe/Berlin (DB freeze), by user:ann'
    hold_reason: str | None = None
    # What the forms show: the saved window, and the hold's end on the tenant's wall clock (datetime-local value).
    cron: str = ""
    minutes: str = "120"
    timezone: str = ""
    hold_until_local: str = ""

    @property
    def zone_label(self) -> str:
        return self.timezone or "UTC"


def in_words(seconds: float) -> str:
    """'40 s', '25 min', '3 h 20 min' (under 10 h), '13 h', '2 days' (rounded to the nearest unit shown: what a
    badge has room for)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 10:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    if minutes < 47.5 * 60:
        return f"{round(minutes / 60)} h"
    return f"{round(minutes / 1440)} days"


def maintenance_view(instance, now: datetime | None = None) -> MaintenanceView:
    """The window and hold of `instance` (anything with the Instance window_* and hold_* columns) at `now`."""
    now = as_utc(now or utcnow())
    fields = {}
    window = windows.window_of(instance)
    if window is not None:
        state = windows.state_at(window, now)
        fields.update(window_label=window.label, window_open=state.open, cron=window.cron,
                      minutes=str(window.minutes), timezone=window.timezone or "")
        zone = window.zone_name
        if state.open and state.ends_at is not None:
            closes = as_utc(state.ends_at).astimezone(ZoneInfo(zone))
            left = in_words((state.ends_at - now).total_seconds())
            fields["window_text"] = f"open now, closes {closes:%H:%M} (in {left})"
        elif state.open:
            fields["window_text"] = "open now"
        elif state.next_open is not None:
            fields["window_text"] = (f"opens {windows.local_label(state.next_open, zone)} "
                                     f"(in {in_words((state.next_open - now).total_seconds())})")
        else:
            fields["window_text"] = "closed"
    hold = windows.hold_of(instance)
    if hold is not None:
        zone = ZoneInfo(instance.window_timezone or "UTC")
        by = f", by {hold.by}" if hold.by else ""
        if hold.until is None:
            text = f"Held until released ({hold.reason}){by}"
        else:
            until = f"{as_utc(hold.until).astimezone(zone):%Y-%m-%d %H:%M} {instance.window_timezone or 'UTC'}"
            text = (f"Held until {until} ({hold.reason}){by}" if hold.active(now)
                    else f"Hold expired {until} ({hold.reason}){by}")
            fields["hold_until_local"] = f"{as_utc(hold.until).astimezone(zone):%Y-%m-%dT%H:%M}"
        fields.update(hold_active=hold.active(now), hold_text=text, hold_reason=hold.reason)
    elif instance.window_timezone:
        fields.setdefault("timezone", instance.window_timezone)
    return MaintenanceView(**fields)


def zone_choices() -> tuple[str, ...]:
    """The time zones the form suggests (any IANA name is accepted)."""
    return windows.COMMON_ZONES
