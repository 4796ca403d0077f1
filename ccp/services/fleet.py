"""Read models for the UI: the fleet table and an instance's history, each in a constant number of queries.

These are read-only projections (no rules), kept apart from the views so the views stay thin; the API can use
them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import func, or_, select, union_all

from ccp.extensions import db
from ccp.models import Instance, Rollout, Upgrade
from ccp.protocol import DRY_RUN_CAPABILITY
from ccp.services.plan import APPLY_CAPS


# What an agent must offer for "Upgrade to Release" (the upgrades plan owns the list).
REQUIRED_CAPABILITIES: tuple[str, ...] = tuple(APPLY_CAPS)


@dataclass(frozen=True)
class FleetRow:
    """One line of the fleet table."""

    id: int
    slug: str
    name: str
    domain: str
    driver: str
    image_tag: str | None
    agent_version: str | None
    missing_capabilities: tuple[str, ...]
    dry_run: bool
    attention: str | None
    last_status: str | None
    last_kind: str | None
    last_to_tag: str | None
    last_at: datetime | None


def missing_capabilities(driver: str, capabilities: list | None) -> tuple[str, ...]:
    """Capabilities CCP needs that the instance's agent did not report (none for the in-process local driver)."""
    if driver == "local":
        return ()
    have = set(capabilities or ())
    return tuple(c for c in REQUIRED_CAPABILITIES if c not in have)


def is_dry_run_runtime(capabilities: list | None) -> bool:
    """The tenant's agent runs the labelled dry-run runtime: apply cannot change its containers."""
    return DRY_RUN_CAPABILITY in (capabilities or ())


def fleet_rows(search: str = "") -> list[FleetRow]:
    """Every instance matching `search` (name, slug, domain or tag), with its latest upgrade - in one query.

    The latest upgrade per instance comes from a grouped subquery (max id per instance) joined back, so the number of
    statements does not grow with the fleet.
    """
    latest = (
        select(Upgrade.instance_id, func.max(Upgrade.id).label("last_id")).group_by(Upgrade.instance_id).subquery()
    )
    stmt = (
        select(
            Instance.id, Instance.slug, Instance.name, Instance.domain, Instance.driver, Instance.image_tag,
            Instance.agent_version, Instance.agent_capabilities, Instance.attention,
            Upgrade.status, Upgrade.kind, Upgrade.to_tag, func.coalesce(Upgrade.finished_at, Upgrade.created_at),
        )
        .outerjoin(latest, latest.c.instance_id == Instance.id)
        .outerjoin(Upgrade, Upgrade.id == latest.c.last_id)
        .order_by(Instance.name, Instance.id)
    )
    term = search.strip().lower()
    if term:
        like = f"%{_escape_like(term)}%"
        stmt = stmt.where(or_(*(func.lower(col).like(like, escape="\\") for col in
                                (Instance.name, Instance.slug, Instance.domain, Instance.image_tag))))
    rows = db.session.execute(stmt).all()
    return [
        FleetRow(
            id=r[0], slug=r[1], name=r[2], domain=r[3], driver=r[4], image_tag=r[5], agent_version=r[6],
            missing_capabilities=missing_capabilities(r[4], r[7]), dry_run=is_dry_run_runtime(r[7]), attention=r[8],
            last_status=r[9], last_kind=r[10], last_to_tag=r[11], last_at=r[12],
        )
        for r in rows
    ]


def instance_by_slug(slug: str) -> Instance | None:
    """The instance with this slug, or None."""
    return db.session.execute(select(Instance).filter_by(slug=slug)).scalar_one_or_none()


def recent_upgrades(instance: Instance, limit: int = 50) -> list[Upgrade]:
    """The instance's latest upgrades, newest first (steps are not loaded: History needs none)."""
    stmt = select(Upgrade).filter_by(instance_id=instance.id).order_by(Upgrade.id.desc()).limit(limit)
    return list(db.session.execute(stmt).scalars())


def latest_upgrade(instance: Instance) -> Upgrade | None:
    """The instance's newest upgrade (active or finished), or None."""
    stmt = select(Upgrade).filter_by(instance_id=instance.id).order_by(Upgrade.id.desc()).limit(1)
    return db.session.execute(stmt).scalar_one_or_none()


@dataclass(frozen=True)
class InstanceFacts:
    """The instance page's header line: its tag, its agent (version, when last seen, what it lacks) and badges."""

    slug: str
    image_tag: str | None
    driver: str
    agent_version: str | None
    last_seen_at: datetime | None
    missing_capabilities: tuple[str, ...]
    dry_run: bool
    attention: str | None

    @classmethod
    def of(cls, instance) -> "InstanceFacts":
        """The facts of a loaded instance (anything with the Instance columns)."""
        return cls(slug=instance.slug, image_tag=instance.image_tag, driver=instance.driver,
                   agent_version=instance.agent_version, last_seen_at=instance.last_seen_at,
                   missing_capabilities=missing_capabilities(instance.driver, instance.agent_capabilities),
                   dry_run=is_dry_run_runtime(instance.agent_capabilities), attention=instance.attention)


_FACT_COLUMNS = (Instance.slug, Instance.image_tag, Instance.driver, Instance.agent_version, Instance.last_seen_at,
                 Instance.agent_capabilities, Instance.attention)


def instance_facts(instance_id: int) -> InstanceFacts | None:
    """The header facts of the instance with this id, read as plain columns in one query; None when it is gone."""
    row = db.session.execute(select(*_FACT_COLUMNS).where(Instance.id == instance_id)).mappings().first()
    return InstanceFacts.of(SimpleNamespace(**row)) if row is not None else None


SEEN_TAGS_KEPT = 20


def seen_tags(limit: int = SEEN_TAGS_KEPT) -> list[str]:
    """Image tags CCP has seen in the fleet, newest first, at most `limit`: tags of succeeded upgrades (when they
    ended), the instances' current tags (when the instance last changed) and rollout tags (when started).

    One query however large the fleet; suggestions for a tag field, never a rule."""
    seen = union_all(
        select(Upgrade.to_tag.label("tag"), func.coalesce(Upgrade.finished_at, Upgrade.created_at).label("at"))
        .where(Upgrade.status == "succeeded", Upgrade.to_tag.is_not(None)),
        select(Instance.image_tag.label("tag"), Instance.updated_at.label("at")).where(Instance.image_tag.is_not(None)),
        select(Rollout.tag.label("tag"), Rollout.created_at.label("at")),
    ).subquery()
    stmt = (select(seen.c.tag).where(seen.c.tag != "").group_by(seen.c.tag)
            .order_by(func.max(seen.c.at).desc(), seen.c.tag).limit(limit))
    return list(db.session.execute(stmt).scalars())


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
