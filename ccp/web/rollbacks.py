"""Rollbacks in the browser: "Roll back to this release" from an instance's History tab (the release dialog with a
banner saying what it goes back to, then the usual apply bound to the plan), and "Roll back this rollout" from a
finished rollout's page (a preview of each tenant and the tag it goes back to, then a confirmed start).

Every action needs the 'operate' permission, checked here; the services (ccp.services.history, .rollbacks) decide
and validate, and their refusals are shown where the operator acted (`refused`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint, abort, redirect, render_template, request, url_for

from ccp.extensions import db
from ccp.models import Rollout
from ccp.services import history, rollbacks
from ccp.services.errors import ServiceError
from ccp.services.rollouts import FINAL, RolloutInvalid
from ccp.web import htmx
from ccp.web.instances import load
from ccp.web.permissions import requires, ui_actor
from ccp.web.presenters import changed_first, status_view

bp = Blueprint("rollbacks", __name__)
CONFIRMS = {"outside_window": "outside_window_ok", "held": "held_ok"}  # a refusal's code -> the field confirming it
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
_DIALOG = ("releases/rollback_page.html", "releases/_rollback.html")
DRIFT_LABELS = {"differs": "rendered differently now", "new": "new in the template set since",
                "gone": "no longer in the template set: stays on the host as it is"}


@bp.get("/instances/<slug:slug>/releases/<id:upgrade_id>/rollback")
@requires("operate")
def dialog(slug: str, upgrade_id: int):
    """The release dialog for rolling back to release `upgrade_id`, its preview already made (reads only)."""
    inst = load(slug)
    result = history.preview_rollback(inst, upgrade_id)
    return htmx.render(*_DIALOG, inst=inst, upgrade_id=upgrade_id, result=result, preview=result.preview,
                       files=changed_first(result.preview.files), tag=result.preview.tag,
                       apply_url=url_for("rollbacks.apply", slug=inst.slug, upgrade_id=upgrade_id),
                       apply_label=f"Roll back to {result.target.tag} (release #{result.target.upgrade_id})",
                       drift_labels=DRIFT_LABELS)


@bp.post("/instances/<slug:slug>/releases/<id:upgrade_id>/rollback")
@requires("operate")
def apply(slug: str, upgrade_id: int):
    """Start the rollback bound to the previewed plan; answer the status widget (and close the dialog)."""
    inst = load(slug)
    upgrade = history.start_rollback(inst, upgrade_id, plan=request.form.get("plan", "").strip() or None,
                                     actor=ui_actor(), **_confirmed())
    if not htmx.wants_fragment():
        return redirect(url_for("upgrades.show", upgrade_id=upgrade.id), 303)
    response = htmx.render("upgrades/show.html", "upgrades/_started.html", status=202, view=status_view(upgrade),
                           close_modal=True)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/rollouts/<id:rollout_id>/rollback")
@requires("operate")
def rollout_preview(rollout_id: int):
    """Which tenants rolling the rollout back would take back, to which tag, in which waves (reads only); the wave
    sizes come from the query string, the confirm button starts exactly what is shown."""
    rollout = _rollout(rollout_id)
    sizes = _sizes(request.args)
    try:
        plan = rollbacks.plan_rollback(rollout, **sizes)
    except ServiceError as exc:
        db.session.rollback()
        return _rollout_page(rollout, sizes, error=exc, status=exc.status)
    return _rollout_page(rollout, sizes, plan=plan)


@bp.post("/rollouts/<id:rollout_id>/rollback")
@requires("operate")
def rollout_start(rollout_id: int):
    """Start the previewed rollback (bound to the preview's digest) and go to its page; a refusal is shown on the
    preview page with nothing started."""
    rollout = _rollout(rollout_id)
    sizes = _sizes(request.form)
    expect = request.form.get("expect", "").strip()
    try:
        if not expect:
            raise RolloutInvalid("preview the rollback first, then confirm what the preview shows",
                                 {"expect": "missing"})
        back = rollbacks.start_rollback(rollout, **sizes, actor=ui_actor(), source="ui", expect=expect)
    except ServiceError as exc:
        db.session.rollback()
        plan = None
        try:
            plan = rollbacks.plan_rollback(rollout, **sizes)
        except ServiceError:
            db.session.rollback()
        return _rollout_page(rollout, sizes, plan=plan, error=exc, status=exc.status)
    return htmx.redirect(url_for("rollouts.show", rollout_id=back.id))


@bp.errorhandler(ServiceError)
def refused(exc: ServiceError):
    """A refusal of the rollback dialog or its apply, shown in the dialog with its HTTP status; nothing started.
    A refusal the operator may override (a maintenance window, a hold) offers the same apply again, confirmed."""
    db.session.rollback()
    inst = load(request.view_args["slug"])
    upgrade_id = request.view_args["upgrade_id"]
    apply_url = url_for("rollbacks.apply", slug=inst.slug, upgrade_id=upgrade_id)
    confirm = None
    if exc.code in CONFIRMS and request.endpoint == "rollbacks.apply":
        fields = {"plan": request.form.get("plan", "")}
        fields.update({flag: "1" for flag in CONFIRMS.values() if request.form.get(flag) == "1"})
        fields[CONFIRMS[exc.code]] = "1"
        confirm = {"url": apply_url, "fields": fields, "label": "Roll back anyway"}
    # htmx swaps no 5xx answer (base.html's responseHandling): an agent that is down must still be said in the dialog
    status = 200 if exc.status >= 500 and htmx.wants_fragment() else exc.status
    if request.endpoint == "rollbacks.dialog":  # no preview to show: the dialog with the reason
        return htmx.render(*_DIALOG, status=status, inst=inst, upgrade_id=upgrade_id, result=None,
                           error=exc, target="modal", confirm=None)
    response = htmx.render(*_DIALOG[:1], "releases/_error.html", status=status, inst=inst, upgrade_id=upgrade_id,
                           result=None, error=exc, target="modal", confirm=confirm)
    response.headers["HX-Retarget"] = "#release-preview"
    response.headers["HX-Reswap"] = "innerHTML"
    return response


def _confirmed() -> dict:
    """The confirmations this post carries (the refusal's "Roll back anyway" button sends them); only those set."""
    return {flag: True for flag in CONFIRMS.values() if request.form.get(flag) == "1"}


def _rollout_page(rollout: Rollout, sizes: dict, *, plan=None, error=None, status: int = 200):
    return render_template("rollouts/rollback.html", rollout=rollout, plan=plan, error=error, sizes=sizes), status


def _sizes(values) -> dict:
    """Canary and wave size as typed (numbers when they are; the service refuses anything else, naming the field)."""
    out = {}
    for field, arg, default in (("canary", "canary", "1"), ("waveSize", "wave_size", "5")):
        text = (values.get(field) or default).strip()
        out[arg] = int(text) if _WHOLE_NUMBER.fullmatch(text) else text
    return out


def _rollout(rollout_id: int) -> Rollout:
    rollout = db.session.get(Rollout, rollout_id)
    if rollout is None:
        abort(404, description=f"No rollout {rollout_id}.")
    return rollout


@dataclass(frozen=True)
class RollbackFacts:
    """What a rollout's page says about rollbacks: for a rollback, the rollout it takes back (`rollback_of`, its tag);
    for a release rollout, the rollbacks started for it and whether it may be rolled back now (`offer`)."""

    rollback_of: int | None
    rollback_of_tag: str | None
    rolled_back_by: tuple[int, ...]
    offer: bool


def rollback_facts(rollout: Rollout) -> RollbackFacts:
    """The rollback facts of `rollout` (one or two small queries)."""
    if (rollout.kind or "release") == "rollback":
        earlier = db.session.get(Rollout, rollout.rollback_of) if rollout.rollback_of else None
        return RollbackFacts(rollout.rollback_of, earlier.tag if earlier else None, (), False)
    return RollbackFacts(None, None, tuple(rollbacks.rolled_back_by(rollout)), rollout.status in FINAL)
