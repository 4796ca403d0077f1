"""Login and logout: CSRF-protected form, argon2id verify, failed attempts rate-limited, session renewed at login."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    has_app_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import bindparam, event, select, update
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ccp.web.polling import poll_cache, recheck_seconds
from ccp import rules
from ccp.extensions import db, get_redis, login_manager
from ccp.models import User, utcnow
from ccp.vault import hash_password, verify_password

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)

MAX_FAILURES = 5  # per username + client IP within the window (app.config["CCP_LOGIN_MAX_FAILURES"])
MAX_FAILURES_PER_IP = 50  # any usernames, one IP: slows password spraying (CCP_LOGIN_MAX_FAILURES_PER_IP)
WINDOW_S = 900  # app.config["CCP_LOGIN_WINDOW_S"]
_DUMMY_HASH = hash_password("not-a-real-password-timing-equaliser")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])


def init_app(app: Flask) -> None:
    """Configure Flask-Login: where to send anonymous users and how to load a user from the session."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in."


SESSION_EPOCH_KEY = "_epoch"  # the user's session_epoch when this session was issued
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_USERS = User.__table__
# Columns only, one query, no ORM row: every UI request (the status widget is polled every second) loads its user.
_SESSION_USER_QUERY = select(_USERS.c.id, _USERS.c.username, _USERS.c.role, _USERS.c.session_epoch).where(
    _USERS.c.id == bindparam("user_id"), _USERS.c.active.is_(True))


@dataclass(frozen=True, eq=False)
class SessionUser(UserMixin):
    """The logged-in user as the UI needs it: id, name and role (not the ORM row; views that change a user load it).

    `can` is the model's rule."""

    id: int
    username: str
    role: str

    def can(self, permission: str) -> bool:
        """'read' for everyone, 'operate' for operators and admins, 'admin' for admins (User.can)."""
        return User.can(self, permission)


def polled_view(view):
    """Mark a read-only view that htmx polls (every second, per open page): its requests may reuse a recent check
    of the same user instead of querying it again (see load_user). Apply it under @login_required."""
    view.reuses_user_check = True
    return view


@login_manager.user_loader
def load_user(user_id: str) -> SessionUser | None:
    """The active user with this id, or None (the session then counts as logged out) - also when the session was
    issued in another epoch than the user's (they logged out, or their password changed, since).

    Every request checks the database, except a GET of a @polled_view, which may reuse this process's check of
    the same user for up to CCP_USER_RECHECK_S seconds (default 2; the "user" entries of ccp.web.polling.PollCache,
    which say what that buys and when it is wrong). Every page, every state-changing request and every change made
    through this process (the ORM event below) see a change at once."""
    if not user_id.isdigit():
        return None
    uid = int(user_id)
    app, req = current_app._get_current_object(), request._get_current_object()  # each proxy lookup costs ~1 µs
    cache, key = poll_cache(app), ("user", uid)
    epoch = session.get(SESSION_EPOCH_KEY)
    view = app.view_functions.get(req.endpoint or "")
    if req.method in _SAFE_METHODS and getattr(view, "reuses_user_check", False):
        kept = cache.get(key, recheck_seconds(app))
        if kept is not None:
            return kept[0] if epoch == kept[1] else None
    row = db.session.execute(_SESSION_USER_QUERY, {"user_id": uid}).first()
    if row is None:
        cache.forget(key)
        return None
    user = SessionUser(row.id, row.username, row.role)
    cache.put(key, (user, row.session_epoch))
    return user if epoch == row.session_epoch else None


@event.listens_for(User, "after_update")
@event.listens_for(User, "after_delete")
def _forget_checked_user(mapper, connection, target: User) -> None:
    """A user row changed here (deactivated, role, name): the next request checks the database again."""
    if has_app_context():
        poll_cache().forget(("user", target.id))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form; on valid credentials start a fresh session and go to the fleet (or ?next=)."""
    if current_user.is_authenticated:
        return redirect(url_for("fleet.index"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), (400 if request.method == "POST" else 200)
    username = form.username.data.strip()
    throttle = _Throttle(username, request.remote_addr or "-")
    retry_after = throttle.blocked_for()
    if retry_after:
        flash("Too many failed log-in attempts. Wait a few minutes and try again.", "error")
        return render_template("auth/login.html", form=form), 429, {"Retry-After": str(retry_after)}
    user = (db.session.execute(select(User).filter_by(username=username)).scalar_one_or_none()
            if rules.CONTROL_CHARS.search(username) is None and username.isprintable() else None)  # NUL: nobody
    if user is None:
        verify_password(_DUMMY_HASH, form.password.data)  # same cost as a real check: no user enumeration by timing
    elif user.active and user.check_password(form.password.data):
        throttle.reset()
        user.last_login_at = utcnow()
        db.session.commit()
        # A fresh session: nothing from before the login (e.g. a planted session) survives into the logged-in one.
        session.clear()
        g.pop("csrf_token", None)  # the CSRF token cached for this request belonged to the old session
        login_user(user)
        session[SESSION_EPOCH_KEY] = user.session_epoch
        return redirect(_safe_next(request.args.get("next")))
    throttle.failed()
    log.info("failed login for a username from %s", request.remote_addr)  # the name itself may be a typo'd password
    flash("Unknown user or wrong password.", "error")
    return render_template("auth/login.html", form=form), 401


@bp.post("/logout")
def logout():
    """End the session (and drop everything in it) - and every other session of this user: the signed cookie
    itself stays verifiable until it expires, so what ends it is the user's new session epoch."""
    if current_user.is_authenticated:
        db.session.execute(update(User).where(User.id == current_user.id)
                           .values(session_epoch=User.session_epoch + 1))
        db.session.commit()
        poll_cache().forget(("user", current_user.id))
    logout_user()
    session.clear()
    g.pop("csrf_token", None)
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("fleet.index")


class _Throttle:
    """Failed-login counters in Redis, expiring after the window: one per username+IP, one per IP."""

    def __init__(self, username: str, ip: str) -> None:
        cfg = current_app.config
        # Namespaced by the queue name, so separate CCP installs (and test runs) sharing a Redis do not mix.
        ns = f"ccp:{cfg['CCP'].queue_name}"
        self.window = int(cfg.get("CCP_LOGIN_WINDOW_S", WINDOW_S))
        self.limits = {
            # Hashed so Redis never holds usernames (or passwords typed into the username field).
            f"{ns}:login-fail:" + hashlib.sha256(f"{username.lower()}\0{ip}".encode()).hexdigest():
                int(cfg.get("CCP_LOGIN_MAX_FAILURES", MAX_FAILURES)),
            f"{ns}:login-fail-ip:" + hashlib.sha256(ip.encode()).hexdigest():
                int(cfg.get("CCP_LOGIN_MAX_FAILURES_PER_IP", MAX_FAILURES_PER_IP)),
        }

    def blocked_for(self) -> int:
        """Seconds until another attempt is allowed (0 = allowed now). Fails open, loudly, when Redis is down."""
        try:
            redis = get_redis()
            for key, limit in self.limits.items():
                count = redis.get(key)
                if count is not None and int(count) >= limit:
                    return max(int(redis.ttl(key)), 1)
        except Exception as exc:  # noqa: BLE001
            log.error("login rate limit unavailable (Redis: %s); allowing the attempt", type(exc).__name__)
        return 0

    def failed(self) -> None:
        """Count one failure on every counter; the window starts at the first failure."""
        try:
            pipe = get_redis().pipeline()
            for key in self.limits:
                pipe.set(key, 0, ex=self.window, nx=True)
                pipe.incr(key)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001
            log.error("login rate limit unavailable (Redis: %s)", type(exc).__name__)

    def reset(self) -> None:
        """A successful login clears this username+IP's counter (not the per-IP one)."""
        try:
            get_redis().delete(next(iter(self.limits)))
        except Exception as exc:  # noqa: BLE001 - the counter expires on its own
            log.warning("could not reset the login counter (Redis: %s)", type(exc).__name__)
