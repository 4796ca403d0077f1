"""The fleet page: every instance at a glance."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import select

from ccp.extensions import db
from ccp.models import Instance

bp = Blueprint("fleet", __name__)


@bp.get("/")
@login_required
def index():
    """List instances."""
    instances = db.session.execute(select(Instance).order_by(Instance.name)).scalars().all()
    return render_template("fleet/index.html", instances=instances)
