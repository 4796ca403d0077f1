"""Receivers (admins: list, create, edit, enable/disable, rotate the secret) and the Deliveries log (everyone reads
it; admins replay a receiver's delivery).

A new or rotated secret is rendered straight into the answer to the form (201/200, `Cache-Control: no-store`),
never flashed (the session cookie is signed, not encrypted) and never shown again; the views parse the form and
call ccp.services.receivers / ccp.services.intake, which validate and decide.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, render_template, request, url_for
from sqlalchemy import select

from ccp import rules
from ccp.api.receivers import hook_url  # the API owns the intake route, so its URL
from ccp.extensions import db
from ccp.models import DECISIONS, RECEIVER_KINDS, Receiver, WebhookDelivery
from ccp.services import intake
from ccp.services import receivers as svc
from ccp.services.errors import ServiceError
from ccp.web import htmx
from ccp.web.permissions import requires, ui_actor
from ccp.web.receiver_views import KINDS, delivery_rows, form_data, form_values

bp = Blueprint("receivers", __name__)
PER_PAGE = 50
RECENT = 10


@bp.get("/receivers")
@requires("admin")
def index():
    """Every receiver, and the form that creates one."""
    return _index_page(form_values(None), {})


@bp.get("/receivers/kind-fields")
@requires("admin")
def kind_fields():
    """The kind-dependent part of the new-receiver form (htmx swaps it when the kind changes)."""
    kind = request.args.get("kind", "")
    if kind not in KINDS:
        abort(404)
    return render_template("receivers/_kind_fields.html", values={"kind": kind}, errors={}, help=KINDS[kind],
                           creating=True)


@bp.post("/receivers")
@requires("admin")
def create():
    """Create a receiver; the answer shows its URL and secret this once (422 with the fields' errors)."""
    data, errors = form_data(request.form, creating=True)
    if errors:  # show the service's refusals of the other fields too
        errors = svc.field_errors({k: v for k, v in data.items() if k not in errors}) | errors
    else:
        try:
            receiver, secret = svc.create_receiver(data, actor=ui_actor())
        except ServiceError as exc:
            db.session.rollback()
            errors = dict(exc.details) or {"name": exc.message}
    if errors:
        return _index_page(form_values(None, request.form), errors, status=422)
    return _show_page(receiver, secret=secret, created=True, status=201)


@bp.get("/receivers/<name>")
@requires("admin")
def show(name: str):
    """A receiver: how to point the provider at it, its settings, and its latest deliveries."""
    return _show_page(_find(name))


@bp.post("/receivers/<name>")
@requires("admin")
def update(name: str):
    """Save a receiver's settings (422 with the fields' errors, nothing saved)."""
    receiver = _find(name)
    data, errors = form_data(request.form, creating=False)
    if errors:
        errors = svc.field_errors({k: v for k, v in data.items() if k not in errors}, receiver) | errors
    else:
        try:
            svc.update_receiver(receiver, data, actor=ui_actor())
        except ServiceError as exc:
            db.session.rollback()
            errors = dict(exc.details) or {"name": exc.message}
    if errors:
        return _show_page(receiver, values=form_values(receiver, request.form), errors=errors, status=422)
    flash(f"Receiver {receiver.name} saved.", "ok")
    return htmx.redirect(url_for("receivers.show", name=receiver.name))


@bp.post("/receivers/<name>/toggle")
@requires("admin")
def toggle(name: str):
    """Turn a receiver off (deliveries get 404, nothing stored) or on again."""
    receiver = _find(name)
    svc.update_receiver(receiver, {"enabled": not receiver.enabled}, actor=ui_actor())
    flash(f"Receiver {receiver.name} {'enabled' if receiver.enabled else 'disabled'}.", "ok")
    return htmx.redirect(url_for("receivers.show", name=receiver.name))


@bp.post("/receivers/<name>/rotate")
@requires("admin")
def rotate(name: str):
    """A new secret, shown this once; the old one stops working at once."""
    receiver = _find(name)
    secret = svc.rotate_secret(receiver, actor=ui_actor())
    return _show_page(receiver, secret=secret)


@bp.get("/deliveries")
@requires("read")
def deliveries():
    """Every webhook delivery, newest first, with its decision; ?receiver=<name>&decision=<decision> filter."""
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id.desc())
    name = (request.args.get("receiver") or "").strip()
    decision = request.args.get("decision") or ""
    receiver = svc.get_receiver(name) if name else None
    if name and receiver is None:
        flash(f"No receiver {name[:63]!r}.", "error")
        stmt = stmt.where(WebhookDelivery.id < 0)  # show nothing rather than everything
    elif receiver is not None:
        stmt = stmt.where(WebhookDelivery.receiver_id == receiver.id)
    if decision in DECISIONS:
        stmt = stmt.where(WebhookDelivery.decision == decision)
    page = request.args.get("page", "1")
    pager = db.paginate(stmt, page=int(page) if rules.ASCII_ID.fullmatch(page) else 1, per_page=PER_PAGE,
                        error_out=False)
    names = list(db.session.execute(select(Receiver.name).order_by(Receiver.name)).scalars())
    return htmx.render("receivers/deliveries.html", "receivers/_deliveries.html", rows=delivery_rows(pager.items),
                       pager=pager, receiver=name, decision=decision, names=names, decisions=DECISIONS)


@bp.post("/deliveries/<id:delivery_id>/replay")
@requires("admin")
def replay(delivery_id: int):
    """Decide a receiver's delivery again now; the new delivery and its decision lead the log."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        abort(404)
    try:
        again = intake.replay(delivery, actor=ui_actor())
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return htmx.redirect(url_for("receivers.deliveries"))
    flash(f"Delivery #{delivery.id} replayed as #{again.id}: {again.decision} — {again.reason}", "ok")
    return htmx.redirect(url_for("receivers.deliveries"))


def _find(name: str) -> Receiver:
    receiver = svc.get_receiver(name)
    if receiver is None:
        abort(404)
    return receiver


def _index_page(values: dict, errors: dict, status: int = 200):
    rows = svc.list_receivers()
    kind = values.get("kind") if values.get("kind") in KINDS else "github"
    html = render_template("receivers/index.html", rows=rows, kinds=RECEIVER_KINDS, labels=KINDS, values=values,
                           errors=errors, help=KINDS[kind], creating=True)
    return make_response(html, status)


def _show_page(receiver: Receiver, *, secret: str | None = None, created: bool = False, values=None, errors=None,
               status: int = 200):
    recent = db.session.execute(select(WebhookDelivery).where(WebhookDelivery.receiver_id == receiver.id)
                                .order_by(WebhookDelivery.id.desc()).limit(RECENT)).scalars().all()
    html = render_template("receivers/show.html", receiver=receiver, help=KINDS[receiver.kind],
                           url=hook_url(receiver, secret), secret=secret, created=created,
                           values=values or form_values(receiver), errors=errors or {}, rows=delivery_rows(recent),
                           creating=False, path_secret=svc.hook_path_secret(receiver))
    response = make_response(html, status)
    if secret:
        response.headers["Cache-Control"] = "no-store"
    return response
