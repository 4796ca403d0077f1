"""The fleet page (every instance at a glance, searched as you type, filtered by what the scans found), scanning
now, a drifted instance's diff, and adding an instance."""

from __future__ import annotations

from flask import Blueprint, flash, request, url_for
from flask_login import login_required

from ccp.services import upgrades
from ccp.services.instances import InstanceError, create_instance
from ccp.services.scan_runs import latest_run, start_scan
from ccp.web import htmx
from ccp.web.forms import form_values, instance_data_from_form
from ccp.web.instances import load
from ccp.web.permissions import requires, ui_actor
from ccp.web.presenters import changed_first
from ccp.services.fleet import FLEET_FILTERS, fleet_rows, fleet_view
from ccp.models import SCAN_KINDS

bp = Blueprint("fleet", __name__)
FLAG_LABELS = dict(FLEET_FILTERS)


@bp.app_template_filter("fleet_flag")
def fleet_flag(flag: str) -> str:
    """A fleet filter's label (behind -> Behind, agent_old -> Agent too old)."""
    return FLAG_LABELS.get(flag, flag)


@bp.get("/")
@login_required
def index():
    """The fleet table with its filters (behind, drifted, unreachable, agent too old, attention, held) and their
    counts; an htmx search or filter request gets the rows, with the filters swapped out of band."""
    search = request.args.get("q", "")
    view = fleet_view(fleet_rows(search), request.args.get("f", ""))
    return htmx.render("fleet/index.html", "fleet/_update.html", rows=view.rows, view=view, q=search,
                       filters=FLEET_FILTERS, last_scan=latest_run())


@bp.post("/fleet/scan")
@requires("operate")
def scan():
    """Start a scan of the whole fleet now (drift, update check, agent inventory), one job per instance."""
    run = start_scan(SCAN_KINDS, source="manual", actor=ui_actor())
    flash(f"Scan #{run.id} started: {run.total} instance{'s' if run.total != 1 else ''} queued.", "ok")
    return htmx.redirect(url_for("fleet.index"))


@bp.post("/instances/<slug:slug>/scan")
@requires("operate")
def scan_instance(slug: str):
    """Scan one instance now (drift, update check, agent inventory); its Overview shows what the scan found."""
    inst = load(slug)
    run = start_scan(SCAN_KINDS, source="manual", actor=ui_actor(), instance_ids=[inst.id])
    flash(f"Scan #{run.id} of {inst.slug} started: its findings appear here when it ends.", "ok")
    return htmx.redirect(url_for("instances.show", slug=inst.slug, tab="overview"))


@bp.get("/fleet/drift/<slug:slug>")
@requires("operate")
def drift(slug: str):
    """What a re-apply of the instance's current tag would restore: the release preview at that tag (read-only),
    with its Apply button (which is the re-apply). `?baseline=1` words it as the first look after enrolling."""
    inst = load(slug)
    preview = upgrades.preview_release(inst, inst.image_tag)
    return htmx.render("fleet/drift.html", "releases/_preview.html", inst=inst, preview=preview,
                       files=changed_first(preview.files), tag=preview.tag, page_mode=True,
                       baseline=request.args.get("baseline") == "1")


@bp.route("/instances/new", methods=["GET", "POST"])
@requires("admin")
def new_instance():
    """Show the add form; on POST create the instance or show the service's messages next to the fields (422)."""
    if request.method == "GET":
        return htmx.render("instances/new.html", "instances/_form.html", values=form_values(None), errors={},
                           creating=True)
    data, errors = instance_data_from_form(request.form, creating=True)
    if not errors:
        try:
            inst = create_instance(data, actor=ui_actor())
        except InstanceError as exc:
            errors = exc.details
        else:  # a remote tenant's first look: the baseline, what CCP would change if it re-rendered today
            target = (url_for("fleet.drift", slug=inst.slug, baseline=1) if inst.driver == "remote"
                      else url_for("instances.show", slug=inst.slug))
            return htmx.redirect(target)
    return htmx.render("instances/new.html", "instances/_form.html", status=422, creating=True,
                       values=form_values(None, request.form), errors=errors)
