"""Admin page for fleet awareness: scan schedules (cron, on/off, last and next run, run now) and notification
channels (add, send a test, switch off, delete). Admins only; every change goes through a service, which audits it.

A channel's URL is write-only here: the form takes it, the page shows only Apprise's privacy form of it."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ccp.models import NOTIFY_EVENTS
from ccp.services import notify, schedules
from ccp.services.errors import ServiceError
from ccp.services.schedules import ScheduleNotFound
from ccp.services.scan_runs import recent_runs
from ccp.web.permissions import requires, ui_actor

bp = Blueprint("notify_admin", __name__, url_prefix="/admin")
KIND_LABELS = {"drift": "Drift scan", "updates": "Update check", "agents": "Agent inventory"}


@bp.get("/awareness")
@requires("admin")
def index():
    """Schedules, recent scan runs and notification channels on one page."""
    return _page()


@bp.post("/schedules/<kind>")
@requires("admin")
def update_schedule(kind: str):
    """Save a schedule's cron expression and whether it runs."""
    try:
        schedules.update_schedule(kind, cron=request.form.get("cron", ""), enabled=_checkbox("enabled"),
                                  actor=ui_actor())
    except ScheduleNotFound:
        raise
    except ServiceError as exc:
        return _page(status=exc.status, schedule_errors={kind: exc.message},
                     cron_typed={kind: request.form.get("cron")})
    flash(f"{KIND_LABELS.get(kind, kind)} schedule saved.", "ok")
    return redirect(url_for("notify_admin.index"))


@bp.post("/schedules/<kind>/run")
@requires("admin")
def run_schedule(kind: str):
    """Start a schedule's scan now (its regular times stay)."""
    run = schedules.run_now(kind, actor=ui_actor())
    flash(f"Scan #{run.id} started: {run.total} instance(s) queued.", "ok")
    return redirect(url_for("notify_admin.index"))


@bp.post("/channels")
@requires("admin")
def create_channel():
    """Add a notification channel; its URL is stored encrypted and never shown back."""
    form = request.form
    minutes = form.get("unreachable_after_min", "60").strip() or "60"
    minutes = int(minutes) if minutes.isascii() and minutes.isdigit() and len(minutes) <= 6 else -1
    try:
        channel = notify.create_channel(form.get("name", ""), form.get("url", ""), form.getlist("events"),
                                        unreachable_after_s=minutes * 60, actor=ui_actor())
    except ServiceError as exc:
        return _page(status=exc.status, channel_errors=exc.details or {"name": exc.message},
                     typed={"name": form.get("name", ""), "events": form.getlist("events"),
                            "unreachable_after_min": form.get("unreachable_after_min", "60")})
    flash(f"Channel {channel.name} added ({channel.url_hint}).", "ok")
    return redirect(url_for("notify_admin.index"))


@bp.post("/channels/<id:channel_id>/test")
@requires("admin")
def test_channel(channel_id: int):
    """Queue a test message to the channel (delivered by a worker; the result shows as last sent or last error)."""
    notify.send_test(channel_id, actor=ui_actor())
    flash("Test message queued: a worker sends it; reload to see it under Last sent.", "ok")
    return redirect(url_for("notify_admin.index"))


@bp.post("/channels/<id:channel_id>/enabled")
@requires("admin")
def toggle_channel(channel_id: int):
    """Switch a channel on or off."""
    channel = notify.update_channel(channel_id, enabled=_checkbox("enabled"), actor=ui_actor())
    flash(f"Channel {channel.name} {'on' if channel.enabled else 'off'}.", "ok")
    return redirect(url_for("notify_admin.index"))


@bp.post("/channels/<id:channel_id>/delete")
@requires("admin")
def delete_channel(channel_id: int):
    """Remove a channel."""
    notify.delete_channel(channel_id, actor=ui_actor())
    flash("Channel deleted.", "ok")
    return redirect(url_for("notify_admin.index"))


def _checkbox(name: str) -> bool:
    """A checkbox: "on" when ticked, absent when not; anything else is refused (400), not read as "off"."""
    value = request.form.get(name)
    if value not in (None, "on"):
        raise ServiceError(f"{name} is a checkbox: 'on' or absent", status=400, code="invalid_form")
    return value == "on"


def _page(status: int = 200, **context):
    context.setdefault("typed", {"name": "", "events": [], "unreachable_after_min": "60"})
    body = render_template("admin/awareness.html", schedules=schedules.list_schedules(), runs=recent_runs(5),
                           channels=notify.list_channels(), events=NOTIFY_EVENTS, event_labels=notify.EVENT_LABELS,
                           kind_labels=KIND_LABELS, schedule_errors=context.pop("schedule_errors", {}),
                           channel_errors=context.pop("channel_errors", {}), cron_typed=context.pop("cron_typed", {}),
                           **context)
    return body, status
