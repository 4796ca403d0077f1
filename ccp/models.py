"""Database models (SQLAlchemy 2 style). The schema changes only through migrations/.

Secrets never sit in plaintext columns: agent keys and provisioned tenants' secrets are Fernet ciphertexts
(see ccp.vault); passwords are argon2id hashes; API tokens are SHA-256 hashes.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccp.extensions import db
from ccp.vault import get_vault, hash_password, verify_password

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "rolled_back", "rollback_failed", "interrupted", "cancelled")
UPGRADE_KINDS = ("release", "quick", "full", "rollback", "restore")
ROLES = ("admin", "operator", "viewer")
TOKEN_SCOPES = ("read", "operate", "admin")
DRIVERS = ("remote", "local")
RECEIVER_KINDS = ("github", "gitlab", "gitea", "dockerhub", "distribution", "harbor", "quay")
# What became of a delivery: pending (waiting for its coalescing window), started (a rollout), ignored (policy,
# duplicate, downgrade, not resolvable, tenants held, unknown repository...), rejected (a body CCP could not read).
DECISIONS = ("pending", "started", "ignored", "rejected")


def utcnow() -> datetime:
    """Timezone-aware now (stored as UTC)."""
    return datetime.now(timezone.utc)



class Instance(db.Model):
    """One tenant: a docker-compose application on some host, reached through its agent (or in-process)."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    domain: Mapped[str] = mapped_column(String(253), nullable=False, default="")
    driver: Mapped[str] = mapped_column(String(16), nullable=False, default="remote")
    agent_url: Mapped[str | None] = mapped_column(String(500))
    agent_key_id: Mapped[str | None] = mapped_column(String(100))
    agent_key_enc: Mapped[str | None] = mapped_column(Text)
    install_dir: Mapped[str | None] = mapped_column(String(1000))
    compose_project: Mapped[str] = mapped_column(String(100), nullable=False)
    is_registered: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    image_tag: Mapped[str | None] = mapped_column(String(128))
    template_set: Mapped[str] = mapped_column(String(100), nullable=False, default="default")
    vars: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    secrets_enc: Mapped[str | None] = mapped_column(Text)
    health_urls: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    # Seconds the health URLs must keep answering after an upgrade; None: the global CCP_MONITOR_WINDOW_S.
    monitor_window_s: Mapped[int | None] = mapped_column(Integer)
    agent_version: Mapped[str | None] = mapped_column(String(50))
    agent_capabilities: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attention: Mapped[str | None] = mapped_column(String(500))
    # Maintenance window (issue #16): upgrades that CCP starts by itself wait for it; a cron start + minutes long,
    # read in `window_timezone` (IANA name; None = UTC). No cron = always open.
    window_cron: Mapped[str | None] = mapped_column(String(100))
    window_minutes: Mapped[int | None] = mapped_column(Integer)
    window_timezone: Mapped[str | None] = mapped_column(String(64))
    # A hold pins the tenant to the tag it runs until `hold_until` (None with a reason = until released by hand).
    hold_reason: Mapped[str | None] = mapped_column(String(500))
    hold_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hold_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )

    upgrades: Mapped[list["Upgrade"]] = relationship(
        back_populates="instance", cascade="all, delete-orphan", order_by="Upgrade.id.desc()", lazy="dynamic"
    )
    # What the latest scans found (read by the instance page; the scans write InstanceScan rows themselves).
    scan: Mapped["InstanceScan | None"] = relationship(viewonly=True, uselist=False)

    def set_agent_key(self, key: str | None) -> None:
        """Store the agent's signing key encrypted (None clears it)."""
        self.agent_key_enc = get_vault().encrypt(key) if key else None

    def agent_key(self) -> str | None:
        """The agent's signing key, decrypted."""
        return get_vault().decrypt(self.agent_key_enc) if self.agent_key_enc else None

    def set_secrets(self, values: dict[str, str]) -> None:
        """Store a provisioned tenant's secret values encrypted, as one ciphertext."""
        self.secrets_enc = get_vault().encrypt_json(dict(values)) if values else None

    def decrypted_secrets(self) -> dict[str, str]:
        """A provisioned tenant's secrets (empty for registered tenants, whose secrets never leave their host)."""
        if self.is_registered or not self.secrets_enc:
            return {}
        return get_vault().decrypt_json(self.secrets_enc)

    def secret_names(self) -> list[str]:
        """Names of the held secrets (safe to show)."""
        return sorted(self.decrypted_secrets())

    def __repr__(self) -> str:
        return f"<Instance {self.slug}>"


class Upgrade(db.Model):
    """One upgrade attempt on one instance, with its ordered steps. At most one active per instance (DB index)."""

    __tablename__ = "upgrades"
    __table_args__ = (
        # The database itself refuses a second queued/running upgrade for the same instance.
        Index(
            "uq_upgrades_one_active_per_instance",
            "instance_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_upgrades_instance_created", "instance_id", "created_at"),
        Index("ix_upgrades_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")
    from_tag: Mapped[str | None] = mapped_column(String(128))
    to_tag: Mapped[str | None] = mapped_column(String(128))
    plan_hash: Mapped[str | None] = mapped_column(String(64))
    # The registry digest the release resolved to (sha256:...), when a receiver resolved one.
    image_digest: Mapped[str | None] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200), nullable=False, default="system")
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    snapshot_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id", ondelete="SET NULL"), index=True)
    # What a release put on the tenant (issue #16's release history): the template set and version it was rendered
    # from and the sha256 of every file it rendered (relpath -> hex; a provisioned tenant's .env left out).
    set_name: Mapped[str | None] = mapped_column(String(100))
    set_version: Mapped[str | None] = mapped_column(String(50))
    file_hashes: Mapped[dict | None] = mapped_column(JSON)
    # "Roll back to this release": the earlier successful upgrade whose state this one goes back to.
    rollback_of: Mapped[int | None] = mapped_column(ForeignKey("upgrades.id", ondelete="SET NULL"))
    # The agent's id of the data backup taken before this upgrade (the set's backup hook), when one ran.
    backup_id: Mapped[str | None] = mapped_column(String(100))

    instance: Mapped[Instance] = relationship(back_populates="upgrades")
    steps: Mapped[list["UpgradeStep"]] = relationship(
        back_populates="upgrade", cascade="all, delete-orphan", order_by="UpgradeStep.position"
    )

    @property
    def is_active(self) -> bool:
        """Queued or running."""
        return self.status in ACTIVE_STATUSES

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (None until both are known)."""
        if self.started_at and self.finished_at:
            return (as_utc(self.finished_at) - as_utc(self.started_at)).total_seconds()
        return None


class UpgradeStep(db.Model):
    """One recorded step of an upgrade (render, write, env_patch, pull, up, verify, rollback...)."""

    __tablename__ = "upgrade_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upgrade_id: Mapped[int] = mapped_column(ForeignKey("upgrades.id", ondelete="CASCADE"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    output_tail: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)

    upgrade: Mapped[Upgrade] = relationship(back_populates="steps")

    @property
    def duration_s(self) -> float | None:
        """Seconds the step took (None until finished)."""
        if self.started_at and self.finished_at:
            return (as_utc(self.finished_at) - as_utc(self.started_at)).total_seconds()
        return None


class User(UserMixin, db.Model):
    """An operator account. Roles: admin (everything), operator (upgrades), viewer (read only)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(300), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Sessions carry the epoch they were issued in; a different one here ends them (logout, new password).
    session_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def set_password(self, password: str) -> None:
        """Store an argon2id hash of the password; sessions issued before it end."""
        self.password_hash = hash_password(password)
        self.session_epoch = (self.session_epoch or 0) + 1

    def check_password(self, password: str) -> bool:
        """True when the password matches."""
        return verify_password(self.password_hash, password)

    def can(self, permission: str) -> bool:
        """'read' for everyone, 'operate' for operators and admins, 'admin' for admins."""
        return _allows(self.role, permission)


class ApiToken(db.Model):
    """A bearer token for the API; only its SHA-256 hash and a short display prefix are stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False, default="read")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User | None] = relationship()

    def allows(self, permission: str) -> bool:
        """Whether the token's scope covers a permission (read < operate < admin)."""
        return _allows({"read": "viewer", "operate": "operator", "admin": "admin"}[self.scope], permission)


class AuditEvent(db.Model):
    """Who did what to which instance, with which plan, and how it ended."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id", ondelete="SET NULL"), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    plan_hash: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(50), nullable=False, default="ok")
    detail: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)


class Rollout(db.Model):
    """A fleet-wide release of one tag, applied in waves (driven by the API or a CI webhook).

    `waves` is a list of {"instances": [instance ids], "status": pending|running|succeeded|failed, "started_at",
    "finished_at", "errors": {slug: why an upgrade could not start}}; the upgrades of a wave carry `rollout_id`.
    `skipped` lists the slugs that were already on the tag when the rollout was planned."""

    __tablename__ = "rollouts"
    __table_args__ = (
        # The database itself refuses a second running rollout: two would race for the same tenants.
        Index("uq_rollouts_one_running", "status", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(128), nullable=False)
    image_digest: Mapped[str | None] = mapped_column(String(100))  # what `tag` resolved to at the registry
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    waves: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    skipped: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="api")
    actor: Mapped[str] = mapped_column(String(200), nullable=False, default="system")
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "release" (every tenant to `tag`) or "rollback" (each tenant back to what it ran before rollout `rollback_of`;
    # the per-tenant targets are in `waves`).
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="release", server_default="release")
    rollback_of: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id", ondelete="SET NULL"))


class Receiver(db.Model):
    """A release receiver: where a forge or registry sends its events (`POST /api/hooks/<name>`), and what CCP does
    with them (the repository it listens for, the image it resolves, the tenants it drives, the tag policy).

    Its secret is kept only in the form verification needs: an HMAC key encrypted (`secret_enc`: GitHub, Gitea,
    a GitLab signing token) or the SHA-256 of a token compared as sent (`secret_sha256`: a GitLab secret token, an
    Authorization header, the secret in a Docker Hub/Quay URL)."""

    __tablename__ = "receivers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    secret_enc: Mapped[str | None] = mapped_column(Text)
    secret_sha256: Mapped[str | None] = mapped_column(String(64))
    repository: Mapped[str] = mapped_column(String(255), nullable=False)
    image: Mapped[str] = mapped_column(String(255), nullable=False)
    registry_username: Mapped[str | None] = mapped_column(String(200))
    registry_password_enc: Mapped[str | None] = mapped_column(Text)
    instances: Mapped[list] = mapped_column(JSON, nullable=False, default=list)  # slugs; [] = every instance
    semver_range: Mapped[str | None] = mapped_column(String(200))
    tag_include: Mapped[str | None] = mapped_column(String(200))
    tag_exclude: Mapped[str | None] = mapped_column(String(200))
    min_age_s: Mapped[int | None] = mapped_column(Integer)
    canary: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    wave_size: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )

    def hmac_key(self) -> str | None:
        """The HMAC signing secret, decrypted (None for kinds verified by a token hash)."""
        return get_vault().decrypt(self.secret_enc) if self.secret_enc else None

    def registry_password(self) -> str | None:
        """The registry password or token CCP pulls manifests with, decrypted."""
        return get_vault().decrypt(self.registry_password_enc) if self.registry_password_enc else None

    def set_registry_password(self, password: str | None) -> None:
        """Store the registry password encrypted (None clears it)."""
        self.registry_password_enc = get_vault().encrypt(password) if password else None


class WebhookDelivery(db.Model):
    """One inbound webhook call (CI or a receiver), kept for audit, replay protection and replay.

    Only what the decision needs is kept from the body (repository, tag, digest and its hash), never the body itself:
    some providers put tokens in it (Docker Hub's callback_url)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_receiver_decision", "receiver_id", "decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(50), nullable=False)
    delivery_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    event: Mapped[str] = mapped_column(String(100), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    signature_ok: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="received")
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id", ondelete="SET NULL"))
    detail: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    receiver_id: Mapped[int | None] = mapped_column(ForeignKey("receivers.id", ondelete="SET NULL"))
    decision: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(500))
    repository: Mapped[str | None] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(String(128))
    digest: Mapped[str | None] = mapped_column(String(100))
    replay_of: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    receiver: Mapped[Receiver | None] = relationship()



# --- Fleet awareness (issue #15): scan results per instance, scan runs, schedules, notification channels ---------
SCAN_KINDS = ("drift", "updates", "agents")
SYNC_STATES = ("in_sync", "drifted", "unreachable", "agent_too_old", "error")
UPDATE_STATES = ("current", "update_available", "unknown")
NOTIFY_EVENTS = ("upgrade.failed", "upgrade.rolled_back", "upgrade.rollback_failed", "rollout.halted",
                 "rollout.finished", "scan.drift", "scan.update_available", "agent.unreachable")


class ScanRun(db.Model):
    """One scan of the fleet (a schedule firing, or someone pressing "scan now"), fanned out as one job per
    instance; `done` counts finished instance jobs, and the job that brings it to `total` ends the run (and sends
    its one batched notification)."""

    __tablename__ = "scan_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kinds: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="manual")
    actor: Mapped[str] = mapped_column(String(200), nullable=False, default="system")
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)


class InstanceScan(db.Model):
    """What the latest scans found on one instance (one row per instance, overwritten by each scan): its sync state
    with the drifted files, its update state (registry digest vs deployed, how many allowed releases newer), and its
    agent's inventory. The fleet page reads these rows; nothing is computed on page load."""

    __tablename__ = "instance_scans"

    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    sync_state: Mapped[str | None] = mapped_column(String(20), index=True)
    drifted_files: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    sync_detail: Mapped[str | None] = mapped_column(String(500))
    drift_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    update_state: Mapped[str | None] = mapped_column(String(20))
    behind_by: Mapped[int | None] = mapped_column(Integer)
    newest_tag: Mapped[str | None] = mapped_column(String(128))
    update_detail: Mapped[str | None] = mapped_column(String(500))
    # {image: {"registry": digest now, "deployed": digest compared with, "source": agent|upgrade|baseline, "since"}}
    image_digests: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    update_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    agent_facts: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    agent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unreachable_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scan_run_id: Mapped[int | None] = mapped_column(ForeignKey("scan_runs.id", ondelete="SET NULL"))


class ScanSchedule(db.Model):
    """When a kind of scan runs by itself: a cron expression (UTC) an admin edits; the worker's due-check claims
    `next_run_at` atomically, so one worker among many starts each run."""

    __tablename__ = "scan_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    cron: Mapped[str] = mapped_column(String(100), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("scan_runs.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )


class NotificationChannel(db.Model):
    """Where CCP tells people (an Apprise URL, kept encrypted: it usually holds a token) and which events it gets.
    Only `url_hint` (scheme and host) is ever shown back."""

    __tablename__ = "notification_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    url_enc: Mapped[str] = mapped_column(Text, nullable=False)
    url_hint: Mapped[str] = mapped_column(String(100), nullable=False)
    events: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # "agent unreachable" is told only once an agent has been unreachable this long.
    unreachable_after_s: Mapped[int] = mapped_column(Integer, nullable=False, default=3600)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    # Upgrades and rollouts that ended after this are still to be told (advanced by one claim per batch).
    events_since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))

    def url(self) -> str:
        """The Apprise URL, decrypted (never log or show it)."""
        return get_vault().decrypt(self.url_enc)

    def set_url(self, url: str) -> None:
        """Store the Apprise URL encrypted."""
        self.url_enc = get_vault().encrypt(url)


_RANK = {"viewer": 0, "operator": 1, "admin": 2}
_NEEDS = {"read": 0, "operate": 1, "admin": 2}


def _allows(role: str, permission: str) -> bool:
    return _RANK.get(role, -1) >= _NEEDS[permission]


def as_utc(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; they are UTC (every timestamp is written by utcnow)."""
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def iso_utc(dt: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset, or None."""
    return as_utc(dt).isoformat() if dt else None


class AgentRollout(db.Model):
    """Agents updated to one agent version in waves (issue #15, ccp.services.agent_updates): a canary wave, then
    waves of a fixed size, halted at the first wave where an agent did not come back answering the new version.
    `waves` lists each wave's agent URLs; each agent's progress is an AgentUpdate row."""

    __tablename__ = "agent_rollouts"
    __table_args__ = (
        Index("uq_agent_rollouts_one_running", "status", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_version: Mapped[str] = mapped_column(String(64), nullable=False)
    wheel_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="running")  # succeeded|halted|cancelled
    waves: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    current_wave: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deadline_s: Mapped[int] = mapped_column(Integer, nullable=False, default=120)
    error: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200), nullable=False, default="system")
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AgentUpdate(db.Model):
    """One agent's part in an AgentRollout: waiting, running, then succeeded / failed (with why) / not_started."""

    __tablename__ = "agent_updates"
    __table_args__ = (UniqueConstraint("rollout_id", "agent_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("agent_rollouts.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    agent_url: Mapped[str] = mapped_column(String(500), nullable=False)
    slugs: Mapped[list] = mapped_column(JSON, nullable=False, default=list)  # the tenants it serves, when planned
    wave: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="waiting")
    from_version: Mapped[str | None] = mapped_column(String(64))
    to_version: Mapped[str | None] = mapped_column(String(64))  # what it answered last
    reason: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
