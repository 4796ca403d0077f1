"""The fleet page (every instance at a glance, filtered as you type) and adding an instance."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import login_required

from ccp.services.instances import InstanceError, create_instance
from ccp.web import htmx
from ccp.web.forms import form_values, instance_data_from_form
from ccp.web.permissions import requires, ui_actor
from ccp.services.fleet import fleet_rows

bp = Blueprint("fleet", __name__)


@bp.get("/")
@login_required
def index():
    """The fleet table; an htmx search request gets only the table rows."""
    search = request.args.get("q", "")
    rows = fleet_rows(search)
    return htmx.render("fleet/index.html", "fleet/_rows.html", rows=rows, q=search)


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
        else:
            return htmx.redirect(url_for("instances.show", slug=inst.slug))
    return htmx.render("instances/new.html", "instances/_form.html", status=422, creating=True,
                       values=form_values(None, request.form), errors=errors)
