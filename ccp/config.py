"""Settings from the environment (CCP_*, DATABASE_URL, REDIS_URL), validated once at start-up.

Every problem is reported as a ConfigError whose message names the variable, so start-up can print one clear line
instead of a traceback.
"""

from __future__ import annotations

import os
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MODES = ("production", "development", "demo", "testing")
DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and says what is wrong."""


@dataclass
class Settings:
    """Validated settings. Build with `Settings.from_env()`; tests pass overrides as a dict to create_app."""

    mode: str = "development"
    instance_dir: Path = field(default_factory=lambda: Path("instance").resolve())
    secret_key: str = ""
    database_url: str = ""
    redis_url: str | None = None
    encryption_keys: tuple[str, ...] = ()
    default_image_tag: str = "latest"
    template_sets_dir: Path | None = None
    queue_name: str = "ccp"
    monitor_window_s: float = 10.0
    step_deadline_s: float = 300.0
    agent_connect_timeout_s: float = 3.0
    agent_read_timeout_s: float = 60.0
    job_timeout_s: int = 1800
    heartbeat_stale_s: float = 90.0
    status_reuse_s: float = 5.0
    webhook_secret: str = ""
    receiver_window_s: float = 10.0
    local_compose_command: list[str] | None = None
    proxy_hops: int = 0
    max_body_bytes: int = 1024 * 1024
    agent_wheel: Path | None = None  # the agent wheel agent updates push (default: built from this CCP's source)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        """Read and validate every setting; raise ConfigError naming the first bad variable."""
        env = dict(os.environ if environ is None else environ)
        mode = env.get("CCP_ENV", "development").strip().lower()
        if mode not in MODES:
            raise ConfigError(f"CCP_ENV must be one of {', '.join(MODES)}, got {mode!r}")
        instance_dir = Path(env.get("CCP_INSTANCE_DIR") or "instance").expanduser().resolve()
        s = cls(mode=mode, instance_dir=instance_dir)
        s.secret_key = env.get("CCP_SECRET_KEY", "")
        s.database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'ccp.db'}"
        s.redis_url = env.get("REDIS_URL") or None
        s.encryption_keys = tuple(k.strip() for k in env.get("CCP_ENCRYPTION_KEYS", "").split(",") if k.strip())
        s.default_image_tag = env.get("CCP_DEFAULT_IMAGE_TAG", "latest")
        if env.get("CCP_TEMPLATE_SETS_DIR"):
            s.template_sets_dir = Path(env["CCP_TEMPLATE_SETS_DIR"]).expanduser().resolve()
        s.queue_name = env.get("CCP_QUEUE", "ccp")
        s.monitor_window_s = _number(env, "CCP_MONITOR_WINDOW_S", s.monitor_window_s, minimum=0)
        s.step_deadline_s = _number(env, "CCP_STEP_DEADLINE_S", s.step_deadline_s, minimum=1)
        s.agent_connect_timeout_s = _number(env, "CCP_AGENT_CONNECT_TIMEOUT_S", s.agent_connect_timeout_s, minimum=0.1)
        s.agent_read_timeout_s = _number(env, "CCP_AGENT_READ_TIMEOUT_S", s.agent_read_timeout_s, minimum=0.1)
        s.job_timeout_s = int(_number(env, "CCP_JOB_TIMEOUT_S", s.job_timeout_s, minimum=10))
        s.heartbeat_stale_s = _number(env, "CCP_HEARTBEAT_STALE_S", s.heartbeat_stale_s, minimum=5)
        s.webhook_secret = env.get("CCP_WEBHOOK_SECRET", "")
        s.receiver_window_s = _number(env, "CCP_RECEIVER_WINDOW_S", s.receiver_window_s, minimum=0)
        s.status_reuse_s = _number(env, "CCP_STATUS_REUSE_S", s.status_reuse_s, minimum=0)
        s.proxy_hops = int(_number(env, "CCP_PROXY_HOPS", 0, minimum=0))
        s.max_body_bytes = int(_number(env, "CCP_MAX_BODY", s.max_body_bytes, minimum=1024))
        if env.get("CCP_AGENT_WHEEL"):
            s.agent_wheel = Path(env["CCP_AGENT_WHEEL"]).expanduser().resolve()
        if env.get("CCP_LOCAL_COMPOSE_COMMAND"):
            s.local_compose_command = shlex.split(env["CCP_LOCAL_COMPOSE_COMMAND"])
        s.validate()
        return s

    def validate(self) -> None:
        """Check URLs and required secrets; raise ConfigError naming the variable."""
        check_database_url(self.database_url)
        if self.redis_url is not None:
            check_redis_url(self.redis_url)
        if self.mode == "production":
            if not self.secret_key:
                raise ConfigError("CCP_SECRET_KEY is required when CCP_ENV=production")
            if not self.encryption_keys:
                raise ConfigError("CCP_ENCRYPTION_KEYS is required when CCP_ENV=production")
        if self.secret_key and len(self.secret_key) < 16:
            raise ConfigError("CCP_SECRET_KEY must be at least 16 characters")
        if self.webhook_secret and len(self.webhook_secret) < 16:
            raise ConfigError("CCP_WEBHOOK_SECRET must be at least 16 characters")

    def ensure_generated_secrets(self) -> None:
        """Prepare the files start-up needs, then, outside production, create (once) and reuse a secret key and an
        encryption key in the instance folder.

        Preparing means: the instance folder exists (created 0700) whenever something lives in it, and a SQLite
        database file exists (created 0600, before sqlite opens it: its -journal/-wal/-shm files copy that mode).
        Raises ConfigError (naming CCP_INSTANCE_DIR or DATABASE_URL) when a folder is missing and cannot be made.
        """
        if self.needs_instance_dir():
            self.ensure_instance_dir()
        self.ensure_sqlite_file()
        if self.mode == "production":
            return
        if not self.secret_key:
            self.secret_key = _kept_secret(self.instance_dir / "secret_key", lambda: secrets.token_urlsafe(48))
        if not self.encryption_keys:
            from cryptography.fernet import Fernet

            key = _kept_secret(self.instance_dir / "encryption_key", lambda: Fernet.generate_key().decode())
            self.encryption_keys = (key,)

    def needs_instance_dir(self) -> bool:
        """Whether anything lives in the instance folder: generated keys (outside production), the embedded Redis
        (no REDIS_URL) or the SQLite file. A production set-up with PostgreSQL and REDIS_URL needs none, so a
        read-only working directory does not stop it."""
        db_file = sqlite_file(self.database_url)
        return (self.mode != "production" or self.redis_url is None
                or (db_file is not None and db_file.is_relative_to(self.instance_dir)))

    def ensure_instance_dir(self) -> None:
        """Create the instance folder (0700; parents with the default mode) if missing; raise ConfigError if not
        possible. An existing folder keeps its mode."""
        try:
            self.instance_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"CCP_INSTANCE_DIR {str(self.instance_dir)!r} cannot be created: "
                              f"{exc.strerror or exc}") from None

    def ensure_sqlite_file(self) -> None:
        """Create a missing SQLite database file 0600 (umask-independent), so sqlite never creates it 0644.

        An existing file keeps its mode (an operator may have chosen one); a missing parent folder outside the
        instance folder is the operator's to make, so it is a ConfigError naming DATABASE_URL."""
        path = sqlite_file(self.database_url)
        if path is None or path.exists():
            return
        if not path.parent.is_dir():
            raise ConfigError(f"DATABASE_URL points into a missing folder: {str(path.parent)!r}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)  # os.open's mode passes through the umask, which could strip the owner's bits
        except OSError as exc:
            raise ConfigError(f"DATABASE_URL file {str(path)!r} cannot be created: {exc.strerror or exc}") from None

    def to_flask(self) -> dict:
        """The subset Flask and its extensions read from app.config."""
        return {
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": normalise_database_url(self.database_url),
            # A server connection can drop between requests; a SQLite file cannot, so only servers pay for the ping.
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": not self.database_url.startswith("sqlite")},
            "TESTING": self.mode == "testing",
            "CCP": self,
        }


def _number(env: dict, name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _kept_secret(path: Path, make) -> str:
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def check_database_url(url: str) -> None:
    """Raise ConfigError when DATABASE_URL is not a URL of a supported database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a valid database URL: {_redact(url)!r}") from None
    if parsed.drivername not in DB_SCHEMES:
        raise ConfigError(
            f"DATABASE_URL scheme {parsed.drivername!r} is not supported (use sqlite:/// or postgresql://)"
        )


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite DATABASE_URL; None for other databases, in-memory and `file:` URI databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(parsed.database).expanduser().resolve()


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgresql:// URLs (the only PostgreSQL driver we depend on)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def check_redis_url(url: str) -> None:
    """Raise ConfigError when REDIS_URL is not a redis://, rediss:// or unix:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {_redact(url)!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"REDIS_URL has no host: {_redact(url)!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ConfigError(f"REDIS_URL has an invalid port: {_redact(url)!r}") from None


def _redact(url: str) -> str:
    """Hide a password in a URL before it goes into an error message."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
