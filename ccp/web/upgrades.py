"""One upgrade: its detail page, the polled status widget, and cancelling it."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import bindparam, select

from ccp.services import changes
from ccp.web.polling import poll_cache, reuse_seconds
from ccp.extensions import db
from ccp.models import Instance, Upgrade, UpgradeStep
from ccp.services import upgrades
from ccp.services.fleet import instance_facts
from ccp.services.upgrades import StepStatus, UpgradeStatus
from ccp.web import htmx
from ccp.web.auth import polled_view
from ccp.web.permissions import requires, ui_actor
from ccp.web.presenters import StatusView, build_status_view, status_label

bp = Blueprint("upgrades", __name__, url_prefix="/upgrades")

_UP, _INST, _STEP = Upgrade.__table__, Instance.__table__, UpgradeStep.__table__
_STEP_FIELDS = tuple(StepStatus.__dataclass_fields__)
_UPGRADE_FIELDS = tuple(name for name in UpgradeStatus.__dataclass_fields__
                        if name not in ("steps", "instance_slug", "instance_name"))
# The widget reads only the columns it shows, in one query: the upgrade joined to its instance and, outer, its
# steps in order. No ORM objects, no JSON columns.
STATUS_QUERY = (
    select(*(_UP.c[name] for name in _UPGRADE_FIELDS),
           _INST.c.slug.label("instance_slug"), _INST.c.name.label("instance_name"),
           *(_STEP.c[name].label(f"step_{name}") for name in _STEP_FIELDS))
    .join(_INST, _INST.c.id == _UP.c.instance_id)
    .outerjoin(_STEP, _STEP.c.upgrade_id == _UP.c.id)
    .where(_UP.c.id == bindparam("upgrade_id"))
    .order_by(_STEP.c.position)
)


def read_status(upgrade_id: int) -> UpgradeStatus:
    """The upgrade's read model from one lean query, or 404.

    A Core read on its own pooled connection (no ORM session: this path is polled every second by every open page);
    it sees committed data only."""
    with db.engine.connect() as conn:
        rows = conn.execute(STATUS_QUERY, {"upgrade_id": upgrade_id}).mappings().all()
    if not rows:
        abort(404, description=f"No upgrade {upgrade_id}.")
    first = rows[0]
    steps = tuple(StepStatus(*(row[f"step_{name}"] for name in _STEP_FIELDS))
                  for row in rows if row["step_name"] is not None)
    return UpgradeStatus(**{name: first[name] for name in (*_UPGRADE_FIELDS, "instance_slug", "instance_name")},
                         steps=steps)


def widget_view(upgrade_id: int) -> StatusView:
    """The widget of this upgrade (404 when unknown); once the upgrade has ended it carries its instance's header
    facts, which the final widget swaps into the page out of band (one more small query, once per upgrade)."""
    status = read_status(upgrade_id)
    return build_status_view(status, facts=instance_facts(status.instance_id) if status.final else None)


def _render(view: StatusView, status: int = 200):
    """The upgrade page, or the widget alone for htmx. The page shows the instance's header line too (the final
    widget's out-of-band target)."""
    facts = view.facts
    if facts is None and not htmx.wants_fragment():
        facts = instance_facts(view.upgrade.instance_id)
    return htmx.render("upgrades/show.html", "upgrades/_status.html", status=status, view=view, facts=facts)


@bp.get("/<id:upgrade_id>")
@login_required
def show(upgrade_id: int):
    """The upgrade's page: what, who, when, and the same status widget as the instance page."""
    return _render(widget_view(upgrade_id))


@bp.get("/<id:upgrade_id>/status")
@login_required
@polled_view
def status(upgrade_id: int):
    """The self-replacing widget: polled while queued/running; 286 with the final markup once it has ended.

    An htmx poll reuses this process's last rendering of the widget while no change notice arrived for the upgrade
    (the "widget" entries of ccp.web.polling.PollCache); a boosted or history-restore request gets the full page.
    The final widget also carries the instance's header line out of band (tag, agent, badges): it is the same for
    every user, so it may be kept with the widget. Running times in a reused widget are as old as the widget;
    static/ccp.js ticks them on from their start."""
    if not htmx.wants_fragment():
        view = widget_view(upgrade_id)
        return htmx.polled(_render(view), final=view.final)
    key = ("widget", upgrade_id, current_user.can("operate"), request.script_root)
    stamp = changes.stamp(upgrade_id)  # before the read: a change during it makes the next poll read
    cache = poll_cache()
    kept = cache.get(key, reuse_seconds())
    if stamp is not None and kept is not None and kept[0] == stamp:
        body, final = kept[1], kept[2]
    else:
        view = widget_view(upgrade_id)
        body, final = _render(view).get_data(), view.final
        if stamp is not None:
            cache.put(key, (stamp, body, final))
    return htmx.polled(htmx.vary(current_app.response_class(body)), final=final)


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
    view = widget_view(upgrade_id)
    view.notice = notice
    response = _render(view, status_code)
    return htmx.polled(response, final=view.final)


@bp.post("/<id:upgrade_id>/restore")
@requires("operate")
def restore(upgrade_id: int):
    """Restore the data backup this upgrade took: queue a "restore" upgrade and go to its page.

    The form must carry `confirm=1` (the button's dialog says what will be overwritten first; without script the
    answer is this widget asking for it, 422). A refusal answers the widget with a notice saying why."""
    upgrade = db.session.get(Upgrade, upgrade_id)
    if upgrade is None:
        abort(404, description=f"No upgrade {upgrade_id}.")
    confirm = request.form.get("confirm")
    if confirm not in (None, "", "1"):  # the form sends 1 or nothing: anything else is not an answer
        abort(400, description="confirm must be 1 (restore) or absent (ask first)")
    try:
        started = upgrades.start_restore(upgrade.instance, upgrade, actor=ui_actor(), confirm=confirm == "1")
    except upgrades.UpgradeError as exc:
        db.session.rollback()
        view = widget_view(upgrade_id)
        view.confirm_restore = isinstance(exc, upgrades.ConfirmationRequired)  # the widget asks for it
        view.notice = None if view.confirm_restore else f"Not restored: {exc.message}"
        return htmx.polled(_render(view, exc.status), final=view.final)
    return htmx.redirect(url_for("upgrades.show", upgrade_id=started.id))
