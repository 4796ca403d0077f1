"""Rollouts in the browser: the list with the start form, the fleet preview a start leads to and its confirmation,
one rollout's page with its polled progress, and cancel.

Starting takes two steps: the form asks for a preview (POST /rollouts/preview: what each tenant would get, in which
wave, and what stands in the way), and only the preview's confirm button starts it (POST /rollouts), bound to the
tenants and waves that preview showed (its digest: a fleet that changed in between is refused, nothing started).
The services do the work and the validation (ccp.services.rollouts, .rollout_preview); these views parse the form,
call them, and render what ccp.web.rollout_views shapes, so templates hold no logic.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from ccp.extensions import db
from ccp.models import Rollout
from ccp.services.rollout_preview import preview_rollout
from ccp.services.rollouts import (
    RolloutConflict, RolloutInvalid, RolloutNotCancellable, cancel_rollout, start_rollout,
)
from ccp.services.errors import ServiceError
from ccp.web import htmx
from ccp.web.auth import polled_view
from ccp.web.permissions import requires, ui_actor
from ccp.web.rollbacks import rollback_facts
from ccp.web.presenters import status_label
from ccp.web.rollout_views import (
    StartForm, files_label, instance_choices, preview_state, rollout_view, start_label, summaries,
)

bp = Blueprint("rollouts", __name__, url_prefix="/rollouts")
PER_PAGE = 50
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")  # ASCII: \d would also match Unicode digits
_START = ("rollouts/index.html", "rollouts/_start.html")  # the page, and the part the form and the preview swap


@bp.get("")
@login_required
def index():
    """Rollouts, newest first; operators also get the form that previews (then starts) one."""
    return render_template("rollouts/index.html", **_index_context(StartForm()))


@bp.post("/preview")
@requires("operate")
def preview():
    """The fleet preview of the form's rollout and its confirm button; a refused form says why next to each field
    (422). Reads only: nothing starts here."""
    form = _submitted()
    try:
        result = preview_rollout(**_service_args(form))
    except RolloutInvalid as exc:
        db.session.rollback()
        form.errors = _field_messages(exc.details)
        return htmx.render(*_START, exc.status, **_index_context(form))
    return htmx.render(*_START, **_index_context(form, result))


@bp.post("")
@requires("operate")
def start():
    """Start the previewed rollout (the confirm button) and go to its page. It must carry the preview's digest: a
    start without one, or for tenants and waves that changed since, is refused and starts nothing (422/409), as is
    anything else the service refuses; the form then says why."""
    form = _submitted()
    expect = request.form.get("expect", "").strip()
    try:
        if not expect:
            raise RolloutInvalid("preview the rollout first, then confirm what the preview shows",
                                 {"expect": "missing: the digest of the preview being confirmed"})
        rollout = start_rollout(**_service_args(form), actor=ui_actor(), source="ui", expect=expect)
    except ServiceError as exc:  # RolloutInvalid (422), RolloutStale / RolloutConflict (409), or Redis unavailable
        db.session.rollback()
        if isinstance(exc, RolloutInvalid) and "expect" not in exc.details:
            form.errors = _field_messages(exc.details)
        else:
            form.refusal = exc.message
            form.running_id = exc.details.get("running_rollout_id") if isinstance(exc, RolloutConflict) else None
        return htmx.render(*_START, exc.status, **_index_context(form))
    return htmx.redirect(url_for("rollouts.show", rollout_id=rollout.id))


@bp.get("/<id:rollout_id>")
@login_required
def show(rollout_id: int):
    """One rollout: what, who, which tenants were skipped, and its progress wave by wave."""
    rollout = _find(rollout_id)
    return htmx.render("rollouts/show.html", "rollouts/_progress.html", view=rollout_view(rollout),
                       rollback=rollback_facts(rollout))


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


def _index_context(form: StartForm, preview=None) -> dict:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    pager = db.paginate(select(Rollout).order_by(Rollout.id.desc()), page=page, per_page=PER_PAGE, error_out=False)
    choices = instance_choices() if current_user.can("operate") else []
    return {"rows": summaries(pager.items), "pager": pager, "form": form, "choices": choices, "preview": preview,
            "preview_state": preview_state, "files_label": files_label,
            "start_label": start_label(preview) if preview else None}


def _submitted() -> StartForm:
    """The start form as submitted (the preview's confirm form repeats the same fields)."""
    return StartForm(tag=request.form.get("tag", "").strip(), canary=request.form.get("canary", "").strip(),
                     waveSize=request.form.get("waveSize", "").strip(),
                     instances=tuple(request.form.getlist("instances")))


def _service_args(form: StartForm) -> dict:
    return {"tag": form.tag or None, "instances": list(form.instances) or None,
            "canary": _whole_number(form.canary), "wave_size": _whole_number(form.waveSize)}


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
