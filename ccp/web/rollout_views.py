"""What the rollout templates show, shaped here so templates hold no logic: the start form's state, a rollout as the
list and its page show it (from which tags to which, progress counted in tenants), each wave's tenants with their
durations, and the labels of the fleet preview."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from ccp.extensions import db
from ccp.models import Instance, Rollout, Upgrade, as_utc, utcnow
from ccp.services.rollout_preview import RolloutPreview, TenantPreview
from ccp.services.rollout_progress import TenantProgress, rollout_waves
from ccp.services.rollouts import skipped_of

SOURCE_LABELS = {"ui": "UI", "api": "API", "webhook": "CI webhook"}
PREVIEW_STATES = {  # a previewed tenant's state -> (label, css status class)
    "ready": ("Ready", "succeeded"),
    "agent_unavailable": ("Agent unreachable", "failed"),
    "agent_too_old": ("Agent too old", "failed"),
    "preview_failed": ("Preview error", "failed"),
    "timed_out": ("No answer in time", "failed"),
    "deleted": ("Deleted", "failed"),
}
MAX_FROM_TAGS = 3  # the list names at most this many "from" tags, then says how many more


@dataclass
class StartForm:
    """What the start form shows: the submitted values (as text) and why the last submission was refused."""

    tag: str = ""
    canary: str = "1"
    waveSize: str = "5"  # noqa: N815 - the API's field name, so the service's error keys match the inputs
    instances: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None  # why nothing started although the fields were valid (409: another rollout runs)
    running_id: int | None = None


@dataclass(frozen=True)
class InstanceChoice:
    slug: str
    name: str
    image_tag: str | None


@dataclass(frozen=True)
class RolloutSummary:
    """One rollout as the list and the page header show it: plain values, its progress counted in tenants."""

    id: int
    tag: str
    status: str
    source: str
    actor: str
    error: str | None
    cancel_requested: bool
    created_at: datetime | None
    finished_at: datetime | None
    skipped: tuple[str, ...]  # slugs already on the tag
    planned: int  # tenants in its waves (the skipped ones are not)
    upgraded: int  # of those, tenants whose upgrade succeeded
    from_tags: tuple[str, ...] = ()  # the tags its tenants were (or are, until upgraded) on, sorted
    image_digest: str | None = None  # what `tag` resolved to at the registry (rollouts a receiver started)
    rollback_of: int | None = None  # a rollback rollout: the rollout it takes back (ccp.services.rollbacks)
    held: tuple[tuple[str, str], ...] = ()  # (slug, why) of tenants a hold kept out of it

    @property
    def final(self) -> bool:
        return self.status != "running"

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)

    @property
    def from_label(self) -> str:
        """'v1', 'v1, v1.1', 'v1, v1.1, v1.2 and 2 more'; '' when no tenant was to move."""
        shown = ", ".join(self.from_tags[:MAX_FROM_TAGS])
        more = len(self.from_tags) - MAX_FROM_TAGS
        return f"{shown} and {more} more" if more > 0 else shown


@dataclass(frozen=True)
class TenantRow:
    """One tenant of a wave on the rollout page: its progress and how long its upgrade took (or runs so far)."""

    tenant: TenantProgress
    seconds: float | None
    running: bool  # `seconds` is the time so far

    @property
    def failed(self) -> bool:
        return self.tenant.status not in ("succeeded", "queued", "running", "not_started", "waiting", "held",
                                          "planning")


@dataclass(frozen=True)
class WaveView:
    number: int
    status: str
    rows: tuple[TenantRow, ...]

    @property
    def canary(self) -> bool:
        return self.number == 1


@dataclass
class RolloutView:
    """Everything the self-replacing progress partial (and the page around it) shows for one rollout."""

    rollout: RolloutSummary
    waves: list[WaveView]
    notice: str | None = None  # why the last action on it was refused (e.g. cancel after it ended)

    @property
    def waiting(self) -> list[TenantProgress]:
        """Tenants of the running wave that wait for their maintenance window."""
        return [row.tenant for wave in self.waves for row in wave.rows if row.tenant.status == "waiting"]


def summarize(rollout: Rollout, upgraded: int, from_tags=()) -> RolloutSummary:
    """The summary of a loaded rollout; `upgraded` and `from_tags` are found by the caller (a page at a time)."""
    return RolloutSummary(
        id=rollout.id, tag=rollout.tag, status=rollout.status, source=rollout.source, actor=rollout.actor,
        error=rollout.error, cancel_requested=bool(rollout.cancel_requested), created_at=rollout.created_at,
        finished_at=rollout.finished_at, skipped=skipped_of(rollout)[0], held=skipped_of(rollout)[1],
        planned=sum(len(wave["instances"]) for wave in rollout.waves or ()), upgraded=upgraded,
        from_tags=tuple(sorted(from_tags, key=_tag_order)), image_digest=rollout.image_digest,
        rollback_of=rollout.rollback_of if rollout.kind == "rollback" else None,
    )


def summaries(rollouts: list[Rollout]) -> list[RolloutSummary]:
    """Summaries of a page of rollouts in three queries however many rows: succeeded tenants per rollout, the tags
    their upgrades started from, and the current tags of tenants not upgraded yet (they would go from there)."""
    ids = [r.id for r in rollouts]
    upgraded = dict(db.session.execute(
        select(Upgrade.rollout_id, func.count(func.distinct(Upgrade.instance_id)))
        .where(Upgrade.rollout_id.in_(ids), Upgrade.status == "succeeded").group_by(Upgrade.rollout_id)).all())
    started: dict[int, dict[int, str | None]] = {}
    for rid, iid, from_tag in db.session.execute(
            select(Upgrade.rollout_id, Upgrade.instance_id, Upgrade.from_tag).where(Upgrade.rollout_id.in_(ids))):
        started.setdefault(rid, {})[iid] = from_tag
    waiting = {iid for r in rollouts for wave in r.waves or () for iid in wave["instances"]
               if iid not in started.get(r.id, {})}
    current = dict(db.session.execute(select(Instance.id, Instance.image_tag).where(Instance.id.in_(waiting)))
                   .all()) if waiting else {}
    out = []
    for r in rollouts:
        tags = set(started.get(r.id, {}).values())
        tags |= {current[iid] for wave in r.waves or () for iid in wave["instances"]
                 if iid not in started.get(r.id, {}) and iid in current}
        out.append(summarize(r, upgraded.get(r.id, 0), {t or "none" for t in tags}))
    return out


def rollout_view(rollout: Rollout, notice: str | None = None) -> RolloutView:
    """The progress of one rollout, from the service's own view of it (its waves with each tenant's upgrade)."""
    final = rollout.status != "running"
    now = utcnow()
    waves = [WaveView(
        number=wave.number,
        # a wave that will never start now says so, rather than "pending"
        status="not_started" if final and wave.status == "pending" else wave.status,
        rows=tuple(_row(t, now) for t in wave.tenants),
    ) for wave in rollout_waves(rollout)]
    tenants = [row.tenant for wave in waves for row in wave.rows]
    upgraded = sum(1 for t in tenants if t.status == "succeeded")
    from_tags = {t.from_tag or "none" for t in tenants}
    return RolloutView(rollout=summarize(rollout, upgraded, from_tags), waves=waves, notice=notice)


def instance_choices() -> list[InstanceChoice]:
    """Every instance the form offers, by slug (the order waves follow)."""
    rows = db.session.execute(select(Instance.slug, Instance.name, Instance.image_tag).order_by(Instance.slug))
    return [InstanceChoice(*row) for row in rows]


def preview_state(tenant: TenantPreview) -> tuple[str, str]:
    """(label, status class) of a previewed tenant: ready, why it could not be previewed, or its missing env."""
    if tenant.state == "ready" and tenant.missing_env:
        return "Env missing", "failed"
    if tenant.state == "ready" and tenant.busy_blocks:
        return "Upgrade running", "failed"
    return PREVIEW_STATES.get(tenant.state, (tenant.state.replace("_", " ").capitalize(), "failed"))


def files_label(tenant: TenantPreview) -> str:
    """'1 modified', '1 modified, 2 created', or 'none'."""
    parts = [f"{n} {what}" for n, what in ((tenant.modified, "modified"), (tenant.created, "created")) if n]
    return ", ".join(parts) or "none"


def start_label(preview: RolloutPreview) -> str:
    """The confirm button: 'Start rollout of v2 (3 tenants in 2 waves)'."""
    n, k = len(preview.tenants), len(preview.waves)
    return (f"Start rollout of {preview.tag} ({n} tenant{'' if n == 1 else 's'} in {k} wave{'' if k == 1 else 's'})")


def _row(tenant: TenantProgress, now: datetime) -> TenantRow:
    if tenant.duration_s is not None:
        return TenantRow(tenant, tenant.duration_s, running=False)
    if tenant.started_at is not None and tenant.status == "running":
        return TenantRow(tenant, max((as_utc(now) - as_utc(tenant.started_at)).total_seconds(), 0.0), running=True)
    return TenantRow(tenant, None, running=False)


def _tag_order(tag: str) -> tuple:
    """Tags in a natural order: v1.9 before v1.10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", tag))
