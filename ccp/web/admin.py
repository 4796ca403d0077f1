"""Admin pages: API tokens (list, create - shown once -, revoke) and the audit log. Admins only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange

from ccp.services.audit import audit_query
from ccp.extensions import db
from ccp.models import TOKEN_SCOPES, Instance
from ccp.services.tokens import (
    MAX_EXPIRES_DAYS,
    TokenError,
    create_token,
    get_token,
    list_tokens,
    revoke_token,
    token_state,
)
from ccp.web.forms import WholeNumberField
from ccp.web.permissions import requires, ui_actor

bp = Blueprint("admin", __name__, url_prefix="/admin")
AUDIT_PER_PAGE = 50


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    scope = SelectField("Scope", choices=list(TOKEN_SCOPES), default="read")
    expires_days = WholeNumberField("Expires after (days, 0 = never)", default=90,
                                validators=[NumberRange(min=0, max=MAX_EXPIRES_DAYS)])


class RevokeForm(FlaskForm):
    """CSRF token only."""


@bp.get("/tokens")
@requires("admin")
def tokens():
    """Every API token with its scope, owner, expiry, last use and state."""
    return _tokens_page(TokenForm())


@bp.post("/tokens")
@requires("admin")
def create():
    """Create a token owned by the current admin and show its value once (never stored, never redirected with)."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _tokens_page(form, status=422)
    try:
        token, plaintext = create_token(form.name.data, form.scope.data, user=current_user,
                                        expires_days=form.expires_days.data or None, actor=ui_actor())
    except TokenError as exc:
        form.name.errors = [*form.name.errors, str(exc)]
        return _tokens_page(form, status=422)
    # Rendered straight from the POST (not flashed: the session cookie is signed, not encrypted) and never cached.
    response = _tokens_page(TokenForm(formdata=None), created=token, plaintext=plaintext, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/tokens/<id:token_id>/revoke")
@requires("admin")
def revoke(token_id: int):
    """Revoke a token: it stops working at once."""
    if not RevokeForm().validate_on_submit():
        abort(400, description="The form's security token is missing or expired.")
    token = get_token(token_id)
    if token is None:
        abort(404)
    revoke_token(token, actor=ui_actor())
    flash(f"Token {token.name!r} ({token.prefix}…) revoked.", "ok")
    return redirect(url_for("admin.tokens"))


@bp.get("/audit")
@requires("admin")
def audit():
    """The audit log, newest first; ?instance=<slug> and ?actor=<actor or prefix*> filter it."""
    slug = (request.args.get("instance") or "").strip()
    actor = (request.args.get("actor") or "").strip()
    page = request.args.get("page", 1, type=int) or 1
    instance_id = None
    if slug:
        instance_id = db.session.execute(select(Instance.id).filter_by(slug=slug)).scalar()
        if instance_id is None:
            flash(f"No instance {slug!r}.", "error")
            instance_id = -1  # show nothing rather than everything
    events = db.paginate(audit_query(instance_id=instance_id, actor=actor or None), page=max(page, 1),
                         per_page=AUDIT_PER_PAGE, error_out=False)
    slugs = dict(db.session.execute(select(Instance.id, Instance.slug)).all())
    instances = sorted(slugs.values())
    return render_template("admin/audit.html", events=events, slugs=slugs, instances=instances, slug=slug,
                           actor=actor)


def _tokens_page(form: TokenForm, *, created=None, plaintext: str | None = None, status: int = 200):
    rows = [(t, token_state(t)) for t in list_tokens()]
    html = render_template("admin/tokens.html", form=form, rows=rows, revoke_form=RevokeForm(), created=created,
                           plaintext=plaintext)
    return make_response(html, status)
