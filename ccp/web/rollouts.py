"""Rollouts in the browser: the list with the start form, one rollout's page with its polled progress, and cancel.

The rollouts service does the work and the validation (ccp.services.rollouts); these views parse the form, call it,
and shape what the templates show (the small presenters below), so templates hold no logic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from ccp.extensions import db
from ccp.models import Instance, Rollout, Upgrade
from ccp.services.rollouts import (
    RolloutConflict, RolloutInvalid, RolloutNotCancellable, TenantProgress, cancel_rollout, rollout_waves,
    start_rollout,
)
from ccp.services.errors import ServiceError
from ccp.web import htmx
from ccp.web.auth import polled_view
from ccp.web.permissions import requires, ui_actor
from ccp.web.presenters import status_label

bp = Blueprint("rollouts", __name__, url_prefix="/rollouts")
PER_PAGE = 50
SOURCE_LABELS = {"ui": "UI", "api": "API", "webhook": "CI webhook"}
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")  # ASCII: \d would also match Unicode digits


@dataclass
class StartForm:
    """What the start form shows: the submitted values (as text) and why the last submission was refused."""

    tag: str = ""
    canary: str = "1"
    waveSize: str = "5"  # noqa: N815 - the API's field name, so the service's error keys match the inputs
    instances: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None  # why nothing started although the fields were valid (409: another rollout runs)
    running_id: int | None = None


@dataclass(frozen=True)
class InstanceChoice:
    slug: str
    name: str
    image_tag: str | None


@dataclass(frozen=True)
class RolloutSummary:
    """One rollout as the list and the page header show it: plain values, its progress counted in tenants."""

    id: int
    tag: str
    status: str
    source: str
    actor: str
    error: str | None
    cancel_requested: bool
    created_at: datetime | None
    finished_at: datetime | None
    skipped: tuple[str, ...]
    planned: int  # tenants in its waves (the skipped ones are not)
    upgraded: int  # of those, tenants whose upgrade succeeded

    @property
    def final(self) -> bool:
        return self.status != "running"

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)


@dataclass(frozen=True)
class WaveView:
    number: int
    status: str
    tenants: tuple[TenantProgress, ...]

    @property
    def canary(self) -> bool:
        return self.number == 1


@dataclass
class RolloutView:
    """Everything the self-replacing progress partial (and the page around it) shows for one rollout."""

    rollout: RolloutSummary
    waves: list[WaveView]
    notice: str | None = None  # why the last action on it was refused (e.g. cancel after it ended)


def summarize(rollout: Rollout, upgraded: int) -> RolloutSummary:
    """The summary of a loaded rollout; `upgraded` is counted by the caller (one query for a whole page)."""
    return RolloutSummary(
        id=rollout.id, tag=rollout.tag, status=rollout.status, source=rollout.source, actor=rollout.actor,
        error=rollout.error, cancel_requested=bool(rollout.cancel_requested), created_at=rollout.created_at,
        finished_at=rollout.finished_at, skipped=tuple(rollout.skipped or ()),
        planned=sum(len(wave["instances"]) for wave in rollout.waves or ()), upgraded=upgraded,
    )


def summaries(rollouts: list[Rollout]) -> list[RolloutSummary]:
    """Summaries of a page of rollouts with one more query, however many rows (succeeded tenants per rollout)."""
    ids = [r.id for r in rollouts]
    upgraded = dict(db.session.execute(
        select(Upgrade.rollout_id, func.count(func.distinct(Upgrade.instance_id)))
        .where(Upgrade.rollout_id.in_(ids), Upgrade.status == "succeeded").group_by(Upgrade.rollout_id)).all())
    return [summarize(r, upgraded.get(r.id, 0)) for r in rollouts]


def rollout_view(rollout: Rollout, notice: str | None = None) -> RolloutView:
    """The progress of one rollout, from the service's own view of it (its waves with each tenant's upgrade)."""
    final = rollout.status != "running"
    waves = [WaveView(
        number=wave.number,
        # a wave that will never start now says so, rather than "pending"
        status="not_started" if final and wave.status == "pending" else wave.status,
        tenants=wave.tenants,
    ) for wave in rollout_waves(rollout)]
    upgraded = sum(1 for wave in waves for t in wave.tenants if t.status == "succeeded")
    return RolloutView(rollout=summarize(rollout, upgraded), waves=waves, notice=notice)


def instance_choices() -> list[InstanceChoice]:
    """Every instance the form offers, by slug (the order waves follow)."""
    rows = db.session.execute(select(Instance.slug, Instance.name, Instance.image_tag).order_by(Instance.slug))
    return [InstanceChoice(*row) for row in rows]


@bp.get("")
@login_required
def index():
    """Rollouts, newest first; operators also get the form that starts one."""
    return render_template("rollouts/index.html", **_index_context(StartForm()))


@bp.post("")
@requires("operate")
def start():
    """Start a rollout from the form and go to its page; a refusal re-renders the form saying why (422/409)."""
    form = StartForm(tag=request.form.get("tag", "").strip(), canary=request.form.get("canary", "").strip(),
                     waveSize=request.form.get("waveSize", "").strip(),
                     instances=tuple(request.form.getlist("instances")))
    try:
        rollout = start_rollout(form.tag or None, instances=list(form.instances) or None,
                                canary=_whole_number(form.canary), wave_size=_whole_number(form.waveSize),
                                actor=ui_actor(), source="ui")
    except ServiceError as exc:  # RolloutInvalid (422), RolloutConflict (409), or Redis unavailable
        db.session.rollback()
        if isinstance(exc, RolloutInvalid):
            form.errors = _field_messages(exc.details)
        else:
            form.refusal = exc.message
            form.running_id = exc.details.get("running_rollout_id") if isinstance(exc, RolloutConflict) else None
        return htmx.render("rollouts/index.html", "rollouts/_form.html", exc.status, **_index_context(form))
    return htmx.redirect(url_for("rollouts.show", rollout_id=rollout.id))


@bp.get("/<id:rollout_id>")
@login_required
def show(rollout_id: int):
    """One rollout: what, who, which tenants were skipped, and its progress wave by wave."""
    return htmx.render("rollouts/show.html", "rollouts/_progress.html", view=rollout_view(_find(rollout_id)))


@bp.get("/<id:rollout_id>/progress")
@login_required
@polled_view
def progress(rollout_id: int):
    """The self-replacing progress partial: polled while running; 286 with the final markup once it has ended."""
    view = rollout_view(_find(rollout_id))
    response = htmx.render("rollouts/show.html", "rollouts/_progress.html", view=view)
    return htmx.polled(response, final=view.rollout.final)


@bp.post("/<id:rollout_id>/cancel")
@requires("operate")
def cancel(rollout_id: int):
    """Start no further wave (upgrades already started finish); 409 with the reason when it has already ended."""
    rollout = _find(rollout_id)
    status, notice = 200, None
    try:
        cancel_rollout(rollout, actor=ui_actor())
    except RolloutNotCancellable:
        db.session.rollback()
        status, notice = 409, f"Not cancelled: this rollout had already ended ({status_label(rollout.status)})."
    view = rollout_view(rollout, notice)
    response = htmx.render("rollouts/show.html", "rollouts/_progress.html", status, view=view)
    return htmx.polled(response, final=view.rollout.final)


def _index_context(form: StartForm) -> dict:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    pager = db.paginate(select(Rollout).order_by(Rollout.id.desc()), page=page, per_page=PER_PAGE, error_out=False)
    choices = instance_choices() if current_user.can("operate") else []
    return {"rows": summaries(pager.items), "pager": pager, "form": form, "choices": choices}


def _whole_number(text: str) -> int | str:
    """The number typed, or the text itself: the service refuses a non-number with its own message."""
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else text


def _field_messages(details: dict) -> dict[str, str]:
    """The service's messages by field; its list of unknown slugs becomes a sentence."""
    return {name: f"unknown instance(s): {', '.join(value)}" if isinstance(value, list) else str(value)
            for name, value in details.items()}


def _find(rollout_id: int) -> Rollout:
    rollout = db.session.get(Rollout, rollout_id)
    if rollout is None:
        abort(404, description=f"No rollout {rollout_id}.")
    return rollout
