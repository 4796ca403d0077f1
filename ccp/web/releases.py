"""Starting upgrades from the instance page: the release modal (tag check, preview, apply), Quick Upgrade and
Upgrade Now. Every action here needs the 'operate' permission, checked in the view."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for

from ccp.services import upgrades
from ccp import rules
from ccp.web import htmx
from ccp.web.instances import load
from ccp.web.permissions import requires, ui_actor
from ccp.web.presenters import changed_first, status_view

bp = Blueprint("releases", __name__, url_prefix="/instances")


@bp.get("/<slug:slug>/release")
@requires("operate")
def modal(slug: str):
    """The "Upgrade to Release" dialog: a tag field and a Preview button (a full page without htmx)."""
    inst = load(slug)
    return htmx.render("releases/page.html", "releases/_modal.html", inst=inst, tag=request.args.get("tag", ""))


@bp.get("/<slug:slug>/release/tag")
@requires("operate")
def check_tag(slug: str):
    """Validate the tag as the operator types; answers a one-line message (never changes anything)."""
    inst = load(slug)
    tag = request.args.get("tag", "").strip()
    error = None
    if tag:
        try:
            rules.check_tag(tag)
        except ValueError as exc:
            error = str(exc)
    return htmx.render("releases/page.html", "releases/_tag_check.html", inst=inst, tag=tag, error=error)


@bp.post("/<slug:slug>/release/preview")
@requires("operate")
def preview(slug: str):
    """Ask the upgrades service what the release would change; show summary, env alert and per-file diffs."""
    inst = load(slug)
    tag = request.form.get("tag", "").strip() or None
    try:
        preview = upgrades.preview_release(inst, tag)
    except upgrades.UpgradeError as exc:
        return _error(inst, exc, tag)
    return htmx.render("releases/page.html", "releases/_preview.html", inst=inst, preview=preview,
                       files=changed_first(preview.files), tag=preview.tag)


@bp.post("/<slug:slug>/release/apply")
@requires("operate")
def apply(slug: str):
    """Start the release bound to the previewed plan hash; answer the status widget (and close the dialog)."""
    inst = load(slug)
    tag = request.form.get("tag", "").strip() or None
    plan = request.form.get("plan", "").strip() or None
    try:
        upgrade = upgrades.start_release(inst, tag, plan=plan, actor=ui_actor())
    except upgrades.UpgradeError as exc:
        return _error(inst, exc, tag)
    return _started(upgrade, close_modal=True)


@bp.post("/<slug:slug>/quick-upgrade")
@requires("operate")
def quick_upgrade(slug: str):
    """Queue a Quick Upgrade (pull + up with the files as they are)."""
    return _start(slug, upgrades.start_quick)


@bp.post("/<slug:slug>/upgrade-now")
@requires("operate")
def upgrade_now(slug: str):
    """Queue "Upgrade Now" (the tenant's own scripts/upgrade.sh)."""
    return _start(slug, upgrades.start_full)


def _start(slug: str, start):
    inst = load(slug)
    try:
        upgrade = start(inst, actor=ui_actor())
    except upgrades.UpgradeError as exc:
        return _error(inst, exc, None, target="status")
    return _started(upgrade, close_modal=False)


def _started(upgrade, *, close_modal: bool):
    """htmx: the new status widget in place of the old one; plain form post: the upgrade's own page."""
    if not htmx.wants_fragment():
        return redirect(url_for("upgrades.show", upgrade_id=upgrade.id), 303)
    response = htmx.render("upgrades/show.html", "upgrades/_started.html", status=202,
                           view=status_view(upgrade), close_modal=close_modal)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(inst, exc: upgrades.UpgradeError, tag: str | None, target: str = "modal"):
    """The service's refusal as an alert in the dialog (or the status slot); its HTTP status is kept."""
    response = htmx.render("releases/page.html", "releases/_error.html", status=exc.status, inst=inst, tag=tag,
                           error=exc, target=target)
    if target == "modal":  # apply's form targets the status widget; its refusal belongs in the dialog
        response.headers["HX-Retarget"] = "#release-preview"
        response.headers["HX-Reswap"] = "innerHTML"
    return response
