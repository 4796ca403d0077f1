"""One upgrade: its detail page, the polled status widget, and cancelling it."""

from __future__ import annotations

from flask import Blueprint, abort
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ccp.extensions import db
from ccp.models import Upgrade
from ccp.services import upgrades
from ccp.web import htmx
from ccp.web.permissions import requires
from ccp.web.presenters import status_view

bp = Blueprint("upgrades", __name__, url_prefix="/upgrades")


def load(upgrade_id: int) -> Upgrade:
    """The upgrade with its instance and steps in one query (the widget is polled every second), or 404."""
    stmt = (select(Upgrade).where(Upgrade.id == upgrade_id)
            .options(joinedload(Upgrade.instance), joinedload(Upgrade.steps)))
    upgrade = db.session.execute(stmt).unique().scalar_one_or_none()
    if upgrade is None:
        abort(404, description=f"No upgrade {upgrade_id}.")
    return upgrade


@bp.get("/<int:upgrade_id>")
@login_required
def show(upgrade_id: int):
    """The upgrade's page: what, who, when, and the same status widget as the instance page."""
    upgrade = load(upgrade_id)
    return htmx.render("upgrades/show.html", "upgrades/_status.html", view=status_view(upgrade))


@bp.get("/<int:upgrade_id>/status")
@login_required
def status(upgrade_id: int):
    """The self-replacing widget: polled while queued/running; 286 with the final markup once it has ended."""
    view = status_view(load(upgrade_id))
    response = htmx.render("upgrades/show.html", "upgrades/_status.html", view=view)
    return htmx.polled(response, final=view.final)


@bp.post("/<int:upgrade_id>/cancel")
@requires("operate")
def cancel(upgrade_id: int):
    """Cancel a queued upgrade, or ask a running one to stop at its next step (it rolls back what it changed)."""
    upgrade = load(upgrade_id)
    status_code = 200
    try:
        upgrades.cancel_upgrade(upgrade, actor=current_user.username)
    except upgrades.UpgradeError as exc:
        status_code = exc.status
    view = status_view(load(upgrade_id))
    response = htmx.render("upgrades/show.html", "upgrades/_status.html", status=status_code, view=view)
    return htmx.polled(response, final=view.final)
