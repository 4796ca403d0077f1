"""One upgrade: its detail page, the polled status widget, and cancelling it."""

from __future__ import annotations

import time

from flask import Blueprint, abort, current_app
from flask_login import current_user, login_required
from sqlalchemy import bindparam, select

from ccp import changes
from ccp.extensions import db
from ccp.models import FINAL_STATUSES, Instance, Upgrade, UpgradeStep
from ccp.services import upgrades
from ccp.web import htmx
from ccp.web.auth import polled_view
from ccp.web.permissions import requires, ui_actor
from ccp.web.presenters import StatusView, StepRecord, UpgradeSummary, build_status_view, status_label

bp = Blueprint("upgrades", __name__, url_prefix="/upgrades")
STATUS_READS_KEPT = 4096  # upgrades whose last status read this process keeps (a few kB each)


_UP, _INST, _STEP = Upgrade.__table__, Instance.__table__, UpgradeStep.__table__
# The widget reads only the columns it shows, in one query: the upgrade joined to its instance and, outer, its
# steps in order. No ORM objects, no JSON columns.
STATUS_QUERY = (
    select(*(_UP.c[name] for name in UpgradeSummary.__dataclass_fields__ if not name.startswith("instance_")),
           _INST.c.slug.label("instance_slug"), _INST.c.name.label("instance_name"),
           *(_STEP.c[name].label(f"step_{name}") for name in StepRecord.__dataclass_fields__))
    .join(_INST, _INST.c.id == _UP.c.instance_id)
    .outerjoin(_STEP, _STEP.c.upgrade_id == _UP.c.id)
    .where(_UP.c.id == bindparam("upgrade_id"))
    .order_by(_STEP.c.position)
)
_STATUS_AT = [column.key for column in STATUS_QUERY.selected_columns].index("status")


def status_rows(upgrade_id: int) -> tuple[tuple, ...]:
    """The widget's rows for one upgrade (one per step; at least one), or 404.

    A Core read on its own pooled connection (no ORM session: this path is polled every second by every open page);
    it sees committed data only. The rows are plain tuples, so they can key the cached markup."""
    with db.engine.connect() as conn:
        rows = tuple(tuple(row) for row in conn.execute(STATUS_QUERY, {"upgrade_id": upgrade_id}))
    if not rows:
        abort(404, description=f"No upgrade {upgrade_id}.")
    return rows


def polled_status_rows(upgrade_id: int) -> tuple[tuple, ...]:
    """`status_rows`, or this process's last read of them while no change notice arrived for the upgrade (and for
    at most CCP_STATUS_REUSE_S seconds). See ccp.changes: the stamp is taken before the read, so a change that
    lands during the read makes the next poll read again."""
    stamp = changes.current_feed().stamp(upgrade_id)
    reads = current_app.extensions.setdefault("ccp_status_reads", {})
    now = time.monotonic()
    last = reads.get(upgrade_id)
    if stamp is not None and last is not None and last[0] == stamp and now - last[1] < changes.reuse_seconds():
        return last[2]
    rows = status_rows(upgrade_id)
    if stamp is not None:
        if len(reads) >= STATUS_READS_KEPT:
            reads.clear()
        reads[upgrade_id] = (stamp, now, rows)
    return rows


def status_view_of(rows: tuple[tuple, ...]) -> StatusView:
    """The status widget's view built from `status_rows`."""
    names = [column.key for column in STATUS_QUERY.selected_columns]
    values = [dict(zip(names, row, strict=True)) for row in rows]
    summary = UpgradeSummary(**{name: values[0][name] for name in UpgradeSummary.__dataclass_fields__})
    steps = [StepRecord(**{name: row[f"step_{name}"] for name in StepRecord.__dataclass_fields__})
             for row in values if row["step_name"] is not None]
    return build_status_view(summary, steps)


@bp.get("/<id:upgrade_id>")
@login_required
def show(upgrade_id: int):
    """The upgrade's page: what, who, when, and the same status widget as the instance page."""
    view = status_view_of(status_rows(upgrade_id))
    return htmx.render("upgrades/show.html", "upgrades/_status.html", view=view)


@bp.get("/<id:upgrade_id>/status")
@login_required
@polled_view
def status(upgrade_id: int):
    """The self-replacing widget: polled while queued/running; 286 with the final markup once it has ended.

    Polled every second by every open page, mostly while nothing changed: the fragment's markup is cached by what
    it shows (the rows and the one permission it depends on, for the Cancel button), and the view is only built
    when the markup has to be rendered. The rows are read again as soon as a change notice for this upgrade arrives
    (ccp.changes; every process announces its committed changes), and on every poll while notices cannot be heard."""
    rows = polled_status_rows(upgrade_id)
    response = htmx.render("upgrades/show.html", "upgrades/_status.html",
                           cache_key=(rows, current_user.can("operate")),
                           make_context=lambda: {"view": status_view_of(rows)})
    return htmx.polled(response, final=rows[0][_STATUS_AT] in FINAL_STATUSES)


@bp.post("/<id:upgrade_id>/cancel")
@requires("operate")
def cancel(upgrade_id: int):
    """Cancel a queued upgrade, or ask a running one to stop at its next step (it rolls back what it changed).

    A refused cancel (the upgrade has already ended) answers 409 with the widget and a message saying why."""
    upgrade = db.session.get(Upgrade, upgrade_id)
    if upgrade is None:
        abort(404, description=f"No upgrade {upgrade_id}.")
    status_code, notice = 200, None
    try:
        upgrades.cancel_upgrade(upgrade, actor=ui_actor())
    except upgrades.NotCancellable:
        status_code = 409
        notice = f"Not cancelled: this upgrade had already ended ({status_label(upgrade.status)})."
    except upgrades.UpgradeError as exc:
        status_code, notice = exc.status, f"Not cancelled: {exc.message}"
    view = status_view_of(status_rows(upgrade_id))
    view.notice = notice
    response = htmx.render("upgrades/show.html", "upgrades/_status.html", status=status_code, view=view)
    return htmx.polled(response, final=view.final)
