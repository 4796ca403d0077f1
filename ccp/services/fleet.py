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
from ccp.models import ACTIVE_STATUSES, Instance, InstanceScan, Rollout, Upgrade, utcnow
from ccp.protocol import DRY_RUN_CAPABILITY, PROTOCOL_VERSION
from ccp.services import windows
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
    # What the latest scans found (ccp.services.scans) and why the row is flagged: ((flag, sentence), ...).
    sync_state: str | None = None
    drifted_files: tuple[str, ...] = ()
    scanned_at: datetime | None = None
    reasons: tuple[tuple[str, str], ...] = ()

    @property
    def flags(self) -> frozenset[str]:
        """The fleet filters this row falls under (behind, drifted, unreachable, agent_old, attention, held)."""
        return frozenset(flag for flag, _ in self.reasons)


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
            *SCAN_COLUMNS, Instance.hold_reason, Instance.hold_until, Instance.hold_by,
        )
        .outerjoin(latest, latest.c.instance_id == Instance.id)
        .outerjoin(Upgrade, Upgrade.id == latest.c.last_id)
        .outerjoin(InstanceScan, InstanceScan.instance_id == Instance.id)
        .order_by(Instance.name, Instance.id)
    )
    term = search.strip().lower()
    if term:
        like = f"%{_escape_like(term)}%"
        stmt = stmt.where(or_(*(func.lower(col).like(like, escape="\\") for col in
                                (Instance.name, Instance.slug, Instance.domain, Instance.image_tag))))
    rows = db.session.execute(stmt).all()
    waiting = rollout_waiting()
    now = utcnow()
    out = []
    for r in rows:
        missing = missing_capabilities(r[4], r[7])
        scan = dict(zip(SCAN_NAMES, r[13:13 + len(SCAN_NAMES)], strict=True))
        hold = windows.active_hold(SimpleNamespace(hold_reason=r[-3], hold_until=r[-2], hold_by=r[-1]), now)
        out.append(FleetRow(
            id=r[0], slug=r[1], name=r[2], domain=r[3], driver=r[4], image_tag=r[5], agent_version=r[6],
            missing_capabilities=missing, dry_run=is_dry_run_runtime(r[7]), attention=r[8],
            last_status=r[9], last_kind=r[10], last_to_tag=r[11], last_at=r[12],
            sync_state=scan["sync_state"], drifted_files=tuple(scan["drifted_files"] or ()),
            scanned_at=scan["drift_at"] or scan["agent_at"] or scan["update_at"],
            reasons=row_reasons(scan, missing if r[6] else (), r[8], r[9], waiting.get(r[0]),
                                hold.sentence if hold else None),
        ))
    return out


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
    # Maintenance window and hold (ccp.services.windows; ccp.web.maintenance words them for the badges)
    window_cron: str | None = None
    window_minutes: int | None = None
    window_timezone: str | None = None
    hold_reason: str | None = None
    hold_until: datetime | None = None
    hold_by: str | None = None

    @classmethod
    def of(cls, instance) -> "InstanceFacts":
        """The facts of a loaded instance (anything with the Instance columns)."""
        return cls(slug=instance.slug, image_tag=instance.image_tag, driver=instance.driver,
                   agent_version=instance.agent_version, last_seen_at=instance.last_seen_at,
                   missing_capabilities=missing_capabilities(instance.driver, instance.agent_capabilities),
                   dry_run=is_dry_run_runtime(instance.agent_capabilities), attention=instance.attention,
                   **{name: getattr(instance, name) for name in _MAINTENANCE})


_MAINTENANCE = ("window_cron", "window_minutes", "window_timezone", "hold_reason", "hold_until", "hold_by")
_FACT_COLUMNS = (Instance.slug, Instance.image_tag, Instance.driver, Instance.agent_version, Instance.last_seen_at,
                 Instance.agent_capabilities, Instance.attention, *(getattr(Instance, n) for n in _MAINTENANCE))


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



# --- Fleet awareness (issue #15): the scan columns the fleet query reads, the filters and why a row is flagged ---
SCAN_NAMES = ("sync_state", "drifted_files", "sync_detail", "drift_at", "update_state", "behind_by", "newest_tag",
              "update_detail", "update_at", "agent_facts", "agent_at", "unreachable_since")
SCAN_COLUMNS = tuple(getattr(InstanceScan, name) for name in SCAN_NAMES)
FLEET_FILTERS = (("behind", "Behind"), ("drifted", "Drifted"), ("unreachable", "Unreachable"),
                 ("agent_old", "Agent too old"), ("attention", "Attention"), ("held", "Held"))


@dataclass(frozen=True)
class FleetView:
    """The fleet table under one filter: the rows shown, and how many rows of the search fall under each filter."""

    rows: list[FleetRow]
    counts: dict[str, int]
    total: int
    flag: str


def fleet_view(rows: list[FleetRow], flag: str = "") -> FleetView:
    """Count `rows` per filter and keep those under `flag` (an unknown or empty flag keeps them all)."""
    counts = {key: 0 for key, _ in FLEET_FILTERS}
    for row in rows:
        for key in row.flags:
            counts[key] += 1
    flag = flag if flag in counts else ""
    shown = [row for row in rows if flag in row.flags] if flag else rows
    return FleetView(rows=shown, counts=counts, total=len(rows), flag=flag)


def rollout_waiting() -> dict[int, str]:
    """Instances waiting in a later wave of the running rollout, with a sentence saying so (one query)."""
    rollout = db.session.execute(select(Rollout).filter_by(status="running").limit(1)).scalar_one_or_none()
    if rollout is None:
        return {}
    out = {}
    for number, wave in enumerate(rollout.waves or (), start=1):
        if wave.get("status") == "pending":
            for instance_id in wave.get("instances") or ():
                out[instance_id] = f"waits in wave {number} of rollout #{rollout.id} to {rollout.tag}"
        elif wave.get("waiting"):
            ids = dict(db.session.execute(select(Instance.slug, Instance.id).where(
                Instance.slug.in_(list(wave["waiting"])))).all())
            for slug, until in wave["waiting"].items():
                if slug in ids:
                    opens = f" (opens {until[:16].replace('T', ' ')} UTC)" if until else ""
                    out[ids[slug]] = (f"waits for its maintenance window{opens} in wave {number} of rollout "
                                      f"#{rollout.id} to {rollout.tag}")
    return out


def row_reasons(scan: dict, missing: tuple[str, ...], attention: str | None, last_status: str | None,
                waiting: str | None, hold: str | None = None) -> tuple[tuple[str, str], ...]:
    """Why a fleet row is flagged, as (filter, sentence) pairs, from its scan columns and its latest upgrade.

    `missing`: the capabilities an agent that has answered lacks (empty for one never seen: not known to be old);
    `hold`: the sentence of a hold that applies now (ccp.services.windows)."""
    out = []
    if scan.get("update_state") == "update_available" or (scan.get("behind_by") or 0) > 0:
        out.append(("behind", scan.get("update_detail") or "an update is available"))
    if scan.get("sync_state") == "drifted":
        files = list(scan.get("drifted_files") or ())
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        verb = "files differ" if len(files) != 1 else "file differs"
        out.append(("drifted", f"{len(files)} {verb} from a re-apply: {shown}"))
    if scan.get("unreachable_since") is not None or scan.get("sync_state") == "unreachable":
        out.append(("unreachable", scan.get("sync_detail") or "the agent did not answer the last scan"))
    facts = scan.get("agent_facts") or {}
    protocol = facts.get("protocol")
    if missing:
        out.append(("agent_old", f"agent lacks {', '.join(missing)}"))
    elif isinstance(protocol, int) and protocol < PROTOCOL_VERSION:
        out.append(("agent_old", f"agent speaks protocol {protocol}, CCP {PROTOCOL_VERSION}"))
    elif scan.get("sync_state") == "agent_too_old":
        out.append(("agent_old", scan.get("sync_detail") or "agent too old to preview"))
    if attention:
        out.append(("attention", attention))
    if last_status in ACTIVE_STATUSES:
        out.append(("held", f"an upgrade is {last_status}"))
    elif waiting:
        out.append(("held", waiting))
    if hold:
        out.append(("held", hold))
    return tuple(out)


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
