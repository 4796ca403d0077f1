"""One upgrade: its detail page, the polled status widget, and cancelling it."""

from __future__ import annotations

from flask import Blueprint, abort
from flask_login import current_user, login_required
from sqlalchemy import Select, bindparam, select

from ccp.extensions import db
from ccp.models import FINAL_STATUSES, Instance, Upgrade, UpgradeStep
from ccp.services import upgrades
from ccp.web import htmx
from ccp.web.auth import polled_view
from ccp.web.permissions import requires
from ccp.web.presenters import StatusView, StepRecord, UpgradeSummary, build_status_view, status_label

bp = Blueprint("upgrades", __name__, url_prefix="/upgrades")


class LeanSelect:
    """A Core select run straight on a pooled DBAPI connection, for a path polled so often that the ORM session's
    per-request setup, execution context and teardown would cost several times the query itself.

    `fetch` returns the driver's rows untouched (cheap to compare: they key cached markup); `convert` turns them
    into the values the ORM path would give, with the columns' own result processors (SQLite's text datetimes,
    0/1 booleans). Compiled once per dialect. Parameters must be integers (no bind processing is done). The read
    uses its own pooled connection, outside the request's session: it sees committed data only."""

    def __init__(self, stmt: Select) -> None:
        self.stmt = stmt
        self.columns = tuple(column.key for column in stmt.selected_columns)
        self._by_dialect: dict[tuple, tuple] = {}

    def _compiled(self):
        dialect = db.engine.dialect
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        if key not in self._by_dialect:
            processors = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                               for column in self.stmt.selected_columns)
            self._by_dialect[key] = (self.stmt.compile(dialect=dialect), processors)
        return self._by_dialect[key]

    def fetch(self, **params: int) -> tuple[tuple, ...]:
        compiled, _ = self._compiled()
        values = compiled.construct_params(params)
        args = tuple(values[name] for name in compiled.positiontup) if compiled.positional else values
        connection = db.engine.raw_connection()  # checked out of the pool (pre-pinged); close() gives it back
        try:
            cursor = connection.cursor()
            cursor.execute(compiled.string, args)
            rows = cursor.fetchall()
            cursor.close()
        finally:
            connection.close()
        return tuple(tuple(row) for row in rows)

    def convert(self, rows: tuple[tuple, ...]) -> list[dict]:
        _, processors = self._compiled()
        return [{name: value if process is None else process(value)
                 for name, process, value in zip(self.columns, processors, row, strict=True)} for row in rows]


_UP, _INST, _STEP = Upgrade.__table__, Instance.__table__, UpgradeStep.__table__
# The widget reads only the columns it shows, in one query: the upgrade joined to its instance and, outer, its
# steps in order. No ORM objects, no JSON columns.
STATUS_QUERY = LeanSelect(
    select(*(_UP.c[name] for name in UpgradeSummary.__dataclass_fields__ if not name.startswith("instance_")),
           _INST.c.slug.label("instance_slug"), _INST.c.name.label("instance_name"),
           *(_STEP.c[name].label(f"step_{name}") for name in StepRecord.__dataclass_fields__))
    .join(_INST, _INST.c.id == _UP.c.instance_id)
    .outerjoin(_STEP, _STEP.c.upgrade_id == _UP.c.id)
    .where(_UP.c.id == bindparam("upgrade_id"))
    .order_by(_STEP.c.position)
)
_STATUS_AT = STATUS_QUERY.columns.index("status")


def status_rows(upgrade_id: int) -> tuple[tuple, ...]:
    """The widget's rows for one upgrade (one per step; at least one), as the driver returns them, or 404."""
    rows = STATUS_QUERY.fetch(upgrade_id=upgrade_id)
    if not rows:
        abort(404, description=f"No upgrade {upgrade_id}.")
    return rows


def status_view_of(rows: tuple[tuple, ...]) -> StatusView:
    """The status widget's view built from `status_rows`."""
    values = STATUS_QUERY.convert(rows)
    summary = UpgradeSummary(**{name: values[0][name] for name in UpgradeSummary.__dataclass_fields__})
    steps = [StepRecord(**{name: row[f"step_{name}"] for name in StepRecord.__dataclass_fields__})
             for row in values if row["step_name"] is not None]
    return build_status_view(summary, steps)


@bp.get("/<int:upgrade_id>")
@login_required
def show(upgrade_id: int):
    """The upgrade's page: what, who, when, and the same status widget as the instance page."""
    view = status_view_of(status_rows(upgrade_id))
    return htmx.render("upgrades/show.html", "upgrades/_status.html", view=view)


@bp.get("/<int:upgrade_id>/status")
@login_required
@polled_view
def status(upgrade_id: int):
    """The self-replacing widget: polled while queued/running; 286 with the final markup once it has ended.

    Polled every second by every open page, mostly while nothing changed: the fragment's markup is cached by what
    it shows (the rows and the one permission it depends on, for the Cancel button), and the view is only built
    when the markup has to be rendered. The rows are read on every poll, so the widget is never stale."""
    rows = status_rows(upgrade_id)
    response = htmx.render("upgrades/show.html", "upgrades/_status.html",
                           cache_key=(rows, current_user.can("operate")),
                           make_context=lambda: {"view": status_view_of(rows)})
    return htmx.polled(response, final=rows[0][_STATUS_AT] in FINAL_STATUSES)


@bp.post("/<int:upgrade_id>/cancel")
@requires("operate")
def cancel(upgrade_id: int):
    """Cancel a queued upgrade, or ask a running one to stop at its next step (it rolls back what it changed).

    A refused cancel (the upgrade has already ended) answers 409 with the widget and a message saying why."""
    upgrade = db.session.get(Upgrade, upgrade_id)
    if upgrade is None:
        abort(404, description=f"No upgrade {upgrade_id}.")
    status_code, notice = 200, None
    try:
        upgrades.cancel_upgrade(upgrade, actor=current_user.username)
    except upgrades.NotCancellable:
        status_code = 409
        notice = f"Not cancelled: this upgrade had already ended ({status_label(upgrade.status)})."
    except upgrades.UpgradeError as exc:
        status_code, notice = exc.status, f"Not cancelled: {exc.message}"
    view = status_view_of(status_rows(upgrade_id))
    view.notice = notice
    response = htmx.render("upgrades/show.html", "upgrades/_status.html", status=status_code, view=view)
    return htmx.polled(response, final=view.final)
