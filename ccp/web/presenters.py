"""What the templates show, computed here so templates hold no logic: labels, the three upgrade actions, the status
widget's step progress, and the order the release preview lists its files in (changed first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ccp.drivers import FileDiff
from ccp.models import Upgrade, as_utc, iso_utc, utcnow
from ccp.services.fleet import InstanceFacts, seen_tags
from ccp.services.backups import BackupInfo, backup_of, restored_backup
from ccp.services.upgrades import STEPS_BY_KIND, UpgradeStatus, upgrade_status
from ccp.web.maintenance import maintenance_view

STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "rolled_back": "Rolled back",
    "rollback_failed": "Rollback failed - needs an operator",
    "interrupted": "Interrupted - state unknown",
    "cancelled": "Cancelled",
    # step statuses
    "pending": "Pending",
    "skipped": "Skipped",
    # a rollout's tenants without an upgrade (ccp.services.rollout_progress)
    "waiting": "Waits for its window",
    "held": "Held (left out)",
    "planning": "Being planned",
}

KIND_LABELS = {"release": "Upgrade to Release", "quick": "Quick Upgrade", "full": "Upgrade Now", "rollback": "Rollback",
               "restore": "Restore data"}


@dataclass(frozen=True)
class Action:
    """One of the three upgrade approaches, as a button with its one-line "when to use" and, for the two that
    cannot undo themselves, what happens when they fail (shown next to the button and in its confirmation)."""

    kind: str
    label: str
    when: str
    endpoint: str
    no_rollback: str = ""


ACTIONS = (
    Action("quick", "Quick Upgrade",
           "Images were rebuilt under the same tag: pull and restart with the files as they are.",
           "releases.quick_upgrade",
           # ccp.services.runner: quick takes no snapshot; a failure after `up` only sets instance.attention.
           "No automatic rollback: CCP does not go back to the images that ran before, so if the restart or the "
           "health check fails the tenant keeps what was pulled and is marked as needing attention."),
    Action("full", "Upgrade Now",
           "The tenant manages itself with its own scripts/upgrade.sh: run it, then verify.",
           "releases.upgrade_now",
           "No automatic rollback: CCP takes no snapshot for the script, so if the script or the health check "
           "fails the tenant stays as the script left it and is marked as needing attention."),
    Action("release", "Upgrade to Release",
           "A version bump or any change to compose, env or nginx: re-render, preview the diff, then apply.",
           "releases.modal"),
)

STEP_LABELS = {
    "render": "Render", "check_plan": "Check plan", "write": "Write files", "env_patch": "Patch .env",
    "pull": "Pull images", "up": "Start", "verify": "Verify", "script": "upgrade.sh", "restore": "Restore files",
    "rollback_up": "Restart old version", "rollback_verify": "Verify old version", "rollback": "Roll back",
    "pre_upgrade": "Pre-upgrade hook", "backup": "Back up data", "post_upgrade": "Post-upgrade hook",
    "restore_data": "Restore data",
}


def status_label(status: str | None) -> str:
    """Human label for an upgrade or step status ("Rolled back"), never colour alone."""
    if not status:
        return "Never upgraded"
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def kind_label(kind: str | None) -> str:
    """Human name of an upgrade kind."""
    return KIND_LABELS.get(kind or "", kind or "")


def format_duration(seconds: float | None) -> str:
    """'0.4 s', '12 s', '3 min 05 s'; '' when unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s"


def format_when(moment: datetime | None, seconds: bool = False) -> str:
    """'2026-05-22 09:34 UTC' ('2026-05-22 09:34:07 UTC' with `seconds`); '' when unknown."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def format_elapsed(seconds: float | None) -> str:
    """A running time in whole seconds, as it ticks: '7 s', '3 min 05 s', '1 h 02 min' (static/ccp.js formats it
    the same way between polls)."""
    total = max(0, int(seconds or 0))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class StepView:
    name: str
    label: str
    status: str
    duration: str
    output_tail: str | None = None
    started_at: datetime | None = None


@dataclass(frozen=True)
class Ticker:
    """A running time: the start (for data attributes) and the seconds elapsed when it was rendered."""

    since: str  # ISO 8601, UTC
    seconds: float = field(compare=False)  # depends on the moment of rendering

    @property
    def text(self) -> str:
        return format_elapsed(self.seconds)

    @property
    def whole_seconds(self) -> int:
        return max(0, int(self.seconds))


@dataclass
class StatusView:
    """Everything the self-replacing status widget shows for one upgrade.

    `step_no` is the 1-based place of `current` among the `total` steps shown (0 when no step is current);
    `step_time` ticks while the current step runs, `upgrade_time` while the upgrade does. `facts` (the instance's
    header line) is set once the upgrade has ended: the final widget refreshes the header with it."""

    upgrade: UpgradeStatus
    final: bool
    steps: list[StepView] = field(default_factory=list)
    done: int = 0
    current: StepView | None = None
    tail: str | None = None
    notice: str | None = None  # why the last action on it was refused (e.g. cancel after it ended)
    step_no: int = 0
    total: int = 0
    step_time: Ticker | None = None
    upgrade_time: Ticker | None = None
    facts: InstanceFacts | None = None
    backup: BackupInfo | None = None  # the data backup it took (ccp.services.backups)
    restoring: BackupInfo | None = None  # a restore upgrade: the backup it puts back
    confirm_restore: bool = False  # a restore was asked for without its confirmation: ask for it

    @property
    def active(self) -> bool:
        """Queued or running: the instance's other upgrade actions wait for it."""
        return not self.final


def status_view(upgrade: Upgrade) -> StatusView:
    """The widget for an ORM upgrade with its steps (see build_status_view)."""
    return build_status_view(upgrade_status(upgrade),
                             facts=None if upgrade.is_active else InstanceFacts.of(upgrade.instance))


def build_status_view(upgrade: UpgradeStatus, facts: InstanceFacts | None = None,
                      now: datetime | None = None) -> StatusView:
    """Merge the recorded steps (in order) with the ones still expected; pick the step whose output tail is worth
    showing: the running one, else the first failed one, else (while active) the next pending one. Running times
    are measured at `now` (default: the current time)."""
    final = upgrade.final
    steps = [StepView(r.name, STEP_LABELS.get(r.name, r.name), r.status, format_duration(r.duration_s),
                      r.output_tail, r.started_at) for r in upgrade.steps]
    seen = {s.name for s in steps}
    if not final:  # the steps still to come, so the bar shows them
        steps += [StepView(n, STEP_LABELS.get(n, n), "pending", "") for n in STEPS_BY_KIND.get(upgrade.kind, ())
                  if n not in seen]
    view = StatusView(upgrade=upgrade, final=final, steps=steps, total=len(steps), facts=facts,
                      done=sum(1 for s in steps if s.status in ("succeeded", "skipped")))
    view.backup, view.restoring = backup_of(upgrade), restored_backup(upgrade)
    running = [s for s in steps if s.status == "running"]
    failed = [s for s in steps if s.status == "failed"]
    view.current = running[-1] if running else (failed[0] if failed else None)
    if view.current is None and steps and not final:
        view.current = next((s for s in steps if s.status == "pending"), None)
    if view.current is not None:
        view.step_no = steps.index(view.current) + 1
    view.tail = view.current.output_tail if view.current else None
    if not final:
        now = now or utcnow()
        if view.current is not None and view.current.status == "running" and view.current.started_at:
            view.step_time = _ticker(view.current.started_at, now)
        if upgrade.started_at:
            view.upgrade_time = _ticker(upgrade.started_at, now)
    return view


def _ticker(start: datetime, now: datetime) -> Ticker:
    return Ticker(since=iso_utc(start), seconds=(as_utc(now) - as_utc(start)).total_seconds())


def changed_first(files: tuple[FileDiff, ...]) -> list[FileDiff]:
    """The preview's files in the order the dialog lists them: created, then modified, then unchanged; by path."""
    order = {"created": 0, "modified": 1, "unchanged": 2}
    return sorted(files, key=lambda f: (order.get(f.status, 3), f.path))


def register_filters(app) -> None:
    """Expose the formatting helpers to templates."""
    app.add_template_filter(status_label, "status_label")
    app.add_template_filter(kind_label, "kind_label")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(format_when, "when")
    app.add_template_filter(iso_utc, "iso")
    app.add_template_filter(maintenance_view, "maintenance")
    app.add_template_global(seen_tags, "seen_tags")  # the tag fields' suggestions (templates/releases/_seen_tags.html)
