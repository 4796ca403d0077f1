"""The "Agent updates" page (admins): the fleet's agents as the scans found them, "Update agents to <CCP's agent
version>" (a preview of the waves, then the start bound to it), and each agent update's progress per agent, polled
while it runs (ccp.services.agent_updates)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for

from ccp.extensions import db
from ccp.models import AgentRollout
from ccp.services import agent_updates as svc
from ccp.services.errors import ServiceError
from ccp.web import htmx
from ccp.web.permissions import requires, ui_actor

bp = Blueprint("agent_updates", __name__, url_prefix="/admin/agents")
DEFAULTS = {"canary": 1, "wave_size": 5, "deadline_s": svc.DEFAULT_DEADLINE_S}
FINAL = svc.FINAL


def _sizes(form) -> tuple[dict, dict]:
    """The form's sizes as ints, and field -> error for what is not a whole number."""
    sizes, errors = {}, {}
    for name, default in DEFAULTS.items():
        raw = (form.get(name) or "").strip()
        if not raw:
            sizes[name] = default
        elif raw.isascii() and raw.isdigit() and len(raw) <= 6:
            sizes[name] = int(raw)
        else:
            errors[name] = "a whole number"
    return sizes, errors


def _page(status: int = 200, **context):
    try:
        wheel, wheel_error = svc.agent_wheel(), None
    except svc.NoAgentWheel as exc:
        wheel, wheel_error = None, exc.message
    context.setdefault("sizes", DEFAULTS)
    context.setdefault("errors", {})
    return htmx.render("agent_updates/index.html", "agent_updates/_preview.html", status=status, wheel=wheel,
                       wheel_error=wheel_error, agents=svc.agents(), recent=svc.latest(), **context)


@bp.get("")
@requires("admin")
def index():
    """The agents, the update form and the recent agent updates."""
    return _page()


@bp.post("/preview")
@requires("admin")
def preview():
    """The waves an update would run (read-only), with the Start button bound to them."""
    sizes, errors = _sizes(request.form)
    if errors:
        return _page(422, sizes={**DEFAULTS, **sizes}, errors=errors)
    try:
        planned = svc.plan(canary=sizes["canary"], wave_size=sizes["wave_size"], deadline_s=sizes["deadline_s"])
    except ServiceError as exc:
        return _page(exc.status, sizes=sizes, errors=exc.details or {"form": exc.message})
    return _page(sizes=sizes, planned=planned)


@bp.post("/updates")
@requires("admin")
def start():
    """Start the previewed update (refused when the agents changed since the preview: preview again)."""
    sizes, errors = _sizes(request.form)
    if errors:
        return _page(422, sizes={**DEFAULTS, **sizes}, errors=errors)
    try:
        rollout = svc.start(actor=ui_actor(), source="ui", canary=sizes["canary"], wave_size=sizes["wave_size"],
                            deadline_s=sizes["deadline_s"], expect=request.form.get("expect") or None)
    except ServiceError as exc:
        return _page(exc.status, sizes=sizes, errors=exc.details or {"form": exc.message})
    flash(f"Agent update #{rollout.id} to {rollout.target_version} started.", "ok")
    return htmx.redirect(url_for("agent_updates.show", rollout_id=rollout.id))


def _view(rollout_id: int) -> dict:
    rollout = db.session.get(AgentRollout, rollout_id)
    if rollout is None:
        abort(404, description=f"There is no agent update #{rollout_id}.")
    data = svc.rollout_dict(rollout)
    waves: list[dict] = []
    for agent in data["agents"]:
        if not waves or waves[-1]["number"] != agent["wave"] + 1:
            waves.append({"number": agent["wave"] + 1, "agents": []})
        waves[-1]["agents"].append(agent)
    return {"u": data, "r": rollout, "waves": waves, "final": data["status"] in FINAL}


@bp.get("/updates/<id:rollout_id>")
@requires("admin")
def show(rollout_id: int):
    """One agent update: its waves and each agent's progress and outcome."""
    return htmx.render("agent_updates/show.html", "agent_updates/_progress.html", **_view(rollout_id))


@bp.get("/updates/<id:rollout_id>/progress")
@requires("admin")
def progress(rollout_id: int):
    """The self-replacing progress partial: polled while running; 286 with the final markup once it has ended."""
    view = _view(rollout_id)
    return htmx.polled(htmx.render("agent_updates/show.html", "agent_updates/_progress.html", **view),
                       final=view["final"])


@bp.post("/updates/<id:rollout_id>/cancel")
@requires("admin")
def cancel(rollout_id: int):
    """No further wave starts (agents being updated finish)."""
    status = 200
    try:
        svc.cancel(rollout_id, actor=ui_actor())
    except ServiceError as exc:
        flash(exc.message, "error")
        status = exc.status
    if not htmx.wants_fragment():
        return htmx.redirect(url_for("agent_updates.show", rollout_id=rollout_id))
    return htmx.render("agent_updates/show.html", "agent_updates/_progress.html", status=status, **_view(rollout_id))
