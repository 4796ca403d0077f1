"""Enrolling a tenant from the "Add instance" form: "Test connection" asks the agent what it is before anything is
saved (ccp.services.enrollment.probe_agent) and shows the answer under the agent fields.

The key typed in is sent to this view only to sign the one health call; it is never rendered back, stored or logged
here (the form's key field is a password field the page never fills)."""

from __future__ import annotations

from flask import Blueprint, request

from ccp.services.enrollment import probe_agent
from ccp.services.errors import ServiceError
from ccp.web import htmx
from ccp.web.forms import form_values
from ccp.web.permissions import requires

bp = Blueprint("enroll", __name__, url_prefix="/instances/new")


@bp.post("/probe")
@requires("admin")
def probe():
    """The agent's answer for the URL and key in the form: what it runs and serves, or what is wrong in plain words.

    A malformed URL, key id or key is a 422 naming the fields; an agent that cannot be reached or refuses the key is a
    200 that says so (the form is fine, the agent is not)."""
    form = request.form
    slug = form.get("slug", "").strip() or None
    # Without htmx the whole Add instance page comes back, the form as typed (never the key) and the answer in it.
    page = {"values": form_values(None, form), "errors": {}, "creating": True, "slug": slug}
    try:
        result = probe_agent(form.get("agent_url", "").strip(), form.get("agent_key_id", "").strip(),
                             form.get("agent_key", ""), slug=slug)
    except ServiceError as exc:
        return htmx.render("instances/new.html", "instances/_probe.html", status=422, probe=None, error=exc, **page)
    return htmx.render("instances/new.html", "instances/_probe.html", probe=result, error=None, **page)
