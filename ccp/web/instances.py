"""One instance: a page with tabs (Overview, Updates, History, Settings), editing its settings (admins), and its
maintenance window and hold (operators: the Settings tab's Maintenance section)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from flask_login import login_required

from ccp.services import windows
from ccp.services.instances import InstanceBusy, InstanceError, update_instance
from ccp.web import htmx
from ccp.web.forms import form_values, instance_data_from_form
from ccp.web.maintenance import maintenance_view, zone_choices
from ccp.web.permissions import requires, ui_actor
from ccp.web.presenters import ACTIONS, status_view
from ccp.services.fleet import InstanceFacts, instance_by_slug, latest_upgrade, recent_upgrades
from ccp.services.history import release_history

bp = Blueprint("instances", __name__, url_prefix="/instances")

TABS = ("overview", "updates", "history", "settings")


def load(slug: str):
    """The instance for `slug`, or 404."""
    inst = instance_by_slug(slug)
    if inst is None:
        abort(404, description=f"No instance {slug!r}.")
    return inst


@bp.get("/<slug:slug>", defaults={"tab": "overview"})
@bp.get("/<slug:slug>/<any(updates, history, settings):tab>")
@login_required
def show(slug: str, tab: str):
    """The instance page; an htmx tab click gets only the tab bar and panel."""
    return render_tab(load(slug), tab)


@bp.post("/<slug:slug>/settings")
@requires("admin")
def update(slug: str):
    """Save the settings form; invalid fields come back next to their inputs (422) and nothing changes."""
    inst = load(slug)
    data, errors = instance_data_from_form(request.form, creating=False)
    if not errors:
        try:
            update_instance(inst, data, actor=ui_actor())
        except InstanceError as exc:
            errors = exc.details
        except InstanceBusy as exc:  # the Save button is disabled meanwhile; a form sent anyway lands here
            errors = {"_form": exc.message}
        else:
            if htmx.wants_fragment():
                return render_tab(inst, "settings", saved=True)
            return redirect(url_for("instances.show", slug=inst.slug, tab="settings"))
    return render_tab(inst, "settings", status=422, errors=errors, values=form_values(inst, request.form))


@bp.post("/<slug:slug>/window")
@requires("operate")
def set_window(slug: str):
    """Save the maintenance window (cron start, minutes, time zone); bad fields come back marked (422) and
    nothing is saved."""
    inst = load(slug)
    form = request.form
    minutes = form.get("minutes", "").strip()
    try:
        windows.set_window(inst, form.get("cron", ""), int(minutes) if minutes.isdigit() else minutes,
                           form.get("timezone", "").strip(), actor=ui_actor())
    except windows.WindowInvalid as exc:
        return _maintenance(inst, 422, window_errors=exc.details, window_form=form)
    return _maintenance(inst, notice="Maintenance window saved.")


@bp.post("/<slug:slug>/window/clear")
@requires("operate")
def clear_window(slug: str):
    """Remove the maintenance window: CCP may upgrade the tenant at any time."""
    inst = load(slug)
    windows.clear_window(inst, actor=ui_actor())
    return _maintenance(inst, notice="Maintenance window removed: CCP may upgrade this tenant at any time.")


@bp.post("/<slug:slug>/hold")
@requires("operate")
def set_hold(slug: str):
    """Hold the tenant at its tag (reason, optional end on the tenant's wall clock); 422 with the fields marked."""
    inst = load(slug)
    try:
        until = windows.parse_until(request.form.get("until", ""), inst.window_timezone)
        windows.set_hold(inst, request.form.get("reason", ""), until, actor=ui_actor())
    except windows.WindowInvalid as exc:
        return _maintenance(inst, 422, hold_errors=exc.details, hold_form=request.form)
    return _maintenance(inst, notice="Hold saved: rollouts and receivers skip this tenant while it applies.")


@bp.post("/<slug:slug>/hold/release")
@requires("operate")
def release_hold(slug: str):
    """Release the tenant's hold."""
    inst = load(slug)
    windows.clear_hold(inst, actor=ui_actor())
    return _maintenance(inst, notice="Hold released.")


def _maintenance(inst, status: int = 200, **extra):
    """The Settings tab after a maintenance change (htmx: with the header line out of band; plain post: redirect)."""
    if status == 200 and not htmx.wants_fragment():
        return redirect(url_for("instances.show", slug=inst.slug, tab="settings"))
    return render_tab(inst, "settings", status=status, partial="instances/_tabs_and_facts.html", **extra)


def render_tab(inst, tab: str, status: int = 200, partial: str = "instances/_tabs.html", **extra):
    """Render the instance page (or its tab bar + panel for htmx) with what `tab` needs.

    While the instance's latest upgrade is queued or running (`upgrade_active`), the upgrade actions and the
    settings form are rendered disabled with the reason; static/ccp.js keeps them in step with the status widget."""
    facts = InstanceFacts.of(inst)
    context = {"inst": inst, "tab": tab, "tabs": TABS, "facts": facts, "missing_caps": facts.missing_capabilities,
               "maintenance": maintenance_view(inst)}
    latest = latest_upgrade(inst)
    context["current"] = status_view(latest) if latest is not None else None
    context["upgrade_active"] = latest is not None and latest.is_active
    if tab == "updates":
        context["actions"] = ACTIONS
    elif tab == "history":
        context["upgrades"] = recent_upgrades(inst)
        context["releases"] = release_history(inst)
    context.update(extra)
    if tab == "settings":
        context.setdefault("values", form_values(inst))
        context.setdefault("errors", {})
        context["zones"] = zone_choices()
        for key in ("window_errors", "hold_errors", "window_form", "hold_form"):
            context.setdefault(key, {})
    return htmx.render("instances/show.html", partial, status=status, **context)
