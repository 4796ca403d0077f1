"""Starting upgrades from the instance page: the release modal (tag check, preview, apply), Quick Upgrade and
Upgrade Now. Every action here needs the 'operate' permission, checked in the view; a service's refusal is shown
where the operator acted by this blueprint's one handler (`refused`)."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for

from ccp import rules
from ccp.extensions import db
from ccp.services import upgrades
from ccp.services.errors import ServiceError
from ccp.web import htmx
from ccp.web.instances import load
from ccp.web.permissions import requires, ui_actor
from ccp.web.diffview import diff_view
from ccp.web.presenters import changed_first, status_view

bp = Blueprint("releases", __name__, url_prefix="/instances")
STATUS_SLOT_ENDPOINTS = ("releases.quick_upgrade", "releases.upgrade_now")


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
    preview = upgrades.preview_release(inst, _form_tag())
    return htmx.render("releases/page.html", "releases/_preview.html", inst=inst, preview=preview,
                       files=changed_first(preview.files), tag=preview.tag, page_mode=_page_mode())


@bp.get("/<slug:slug>/release/diff")
@requires("operate")
def file_diff(slug: str):
    """One file's whole diff, laid out, for a preview whose diff was too long to show inline.

    The plan is computed again (the preview holds nothing server-side): if it no longer has the preview's hash the
    tenant or the templates changed since, and the answer says to preview again instead of showing a newer diff
    under the old one's summary."""
    inst = load(slug)
    tag, plan, path = (request.args.get(name, "").strip() for name in ("tag", "plan", "path"))
    preview = upgrades.preview_release(inst, tag or None)
    entry = next((f for f in preview.files if f.path == path), None)
    if plan != preview.plan_hash:
        raise ServiceError("Not shown: the tenant or the templates changed since this preview. Preview again.",
                           status=409, code="plan_stale")
    if entry is None or not entry.changed:
        raise ServiceError(f"Not shown: {path[:200]!r} is not a changed file of this preview.", status=404,
                           code="not_found")
    return htmx.render("releases/page.html", "releases/_diff.html", inst=inst, p=preview,
                       view=diff_view(entry, force=True), tag=preview.tag)


@bp.post("/<slug:slug>/release/apply")
@requires("operate")
def apply(slug: str):
    """Start the release bound to the previewed plan hash; answer the status widget (and close the dialog)."""
    inst = load(slug)
    plan = request.form.get("plan", "").strip() or None
    upgrade = upgrades.start_release(inst, _form_tag(), plan=plan, actor=ui_actor(), **_confirmed())
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
    return _started(start(load(slug), actor=ui_actor(), **_confirmed()), close_modal=False)


# A refusal the operator may override (a maintenance window, a hold) -> the form field that confirms it.
CONFIRMS = {"outside_window": "outside_window_ok", "held": "held_ok"}
ANYWAY = {"releases.apply": "Apply anyway", "releases.quick_upgrade": "Quick Upgrade anyway",
          "releases.upgrade_now": "Upgrade Now anyway"}


def _confirmed() -> dict:
    """The confirmations this form post carries (the refusal's "… anyway" button sends them)."""
    return {flag: request.form.get(flag) == "1" for flag in CONFIRMS.values()}


def _confirmation(exc: ServiceError) -> dict | None:
    """For a refusal the operator may override: the same post again, with its confirmation added (what the
    "… anyway" button sends), else None."""
    if exc.code not in CONFIRMS or request.endpoint not in ANYWAY:
        return None
    fields = {name: request.form.get(name, "") for name in ("tag", "plan") if request.endpoint == "releases.apply"}
    fields.update({flag: "1" for flag in CONFIRMS.values() if request.form.get(flag) == "1"})
    fields[CONFIRMS[exc.code]] = "1"
    return {"url": url_for(request.endpoint, slug=request.view_args["slug"]), "fields": fields,
            "label": ANYWAY[request.endpoint]}


def _started(upgrade, *, close_modal: bool):
    """htmx: the new status widget in place of the old one; plain form post: the upgrade's own page."""
    if not htmx.wants_fragment():
        return redirect(url_for("upgrades.show", upgrade_id=upgrade.id), 303)
    response = htmx.render("upgrades/show.html", "upgrades/_started.html", status=202,
                           view=status_view(upgrade), close_modal=close_modal)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(ServiceError)
def refused(exc: ServiceError):
    """A refusal shown where the operator acted, with its HTTP status: an alert in the dialog, or in the status
    widget's slot for Quick Upgrade and Upgrade Now (started from the Updates tab). Nothing was started."""
    db.session.rollback()
    inst = load(request.view_args["slug"])
    target = ("status" if request.endpoint in STATUS_SLOT_ENDPOINTS
              else "diff" if request.endpoint == "releases.file_diff" else "modal")
    # htmx swaps no 5xx answer (base.html's responseHandling, so a polled widget survives a proxy's 502): a refusal
    # such as an agent that is down must still be said where the operator acted, so htmx gets it as a 200.
    status = 200 if exc.status >= 500 and htmx.wants_fragment() else exc.status
    response = htmx.render("releases/page.html", "releases/_error.html", status=status, inst=inst,
                           tag=_form_tag() if target == "modal" else None, error=exc, target=target,
                           confirm=_confirmation(exc), page_mode=_page_mode())
    if target == "modal":  # apply's form targets the status widget; its refusal belongs in the dialog
        response.headers["HX-Retarget"] = "#release-preview"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _page_mode() -> bool:
    """The request comes from the release page (/instances/<slug>/release), not the dialog: its Apply is a plain
    form post that lands on the upgrade's page (the page has no status widget to swap)."""
    return request.values.get("page") == "1"


def _form_tag() -> str | None:
    return request.form.get("tag", "").strip() or None
