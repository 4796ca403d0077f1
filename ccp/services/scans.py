"""Scanning one instance: agent inventory, drift, update check. Each writes the instance's `InstanceScan` row.

- Agent inventory: the agent's /v1/health (version, protocol, capabilities, Docker and compose versions, problems,
  free disk in the install dir and the host's clock, so its skew) and, from agents with `images.digests`, the
  registry digests of the images the tenant's containers run. Older agents' missing facts read "unknown".
- Drift: the release preview at the instance's CURRENT tag (ccp.services.upgrades.plan_release, read-only). Every
  file it would change is drift (a hand edit, a deleted file, a template change not applied yet); for a registered
  tenant also the CCP-managed .env keys it would set. Unreachable and too-old agents are states of their own.
- Update check: for each receiver that drives this instance (its image, registry credentials and tag policy), the
  registry's digest for the instance's tag is compared with the one running: the agent's report when it gives one
  (GET /v1/instances/<slug>/images), else the digest the last succeeded
  upgrade to this tag resolved, else the digest CCP first saw for this tag (a baseline reset by each upgrade).
  With a tag policy, "behind by n" counts the allowed versions newer than the instance's tag.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import or_, select

from ccp.drivers import DriverError, driver_for
from ccp.extensions import db
from ccp.intake.policy import PolicyInvalid, TagPolicy, version_of
from ccp.intake.registry import ImageRef, RegistryClient, RegistryError
from ccp.models import Instance, InstanceScan, Receiver, Upgrade, as_utc, iso_utc, utcnow
from ccp.protocol import HEALTH_INSTANCE_DETAILS, HEALTH_RUNTIME, IMAGES_CAPABILITY, PROTOCOL_VERSION
from ccp.rules import DIGEST
from ccp.services.plan import ENV_FILE
from ccp.services.upgrades import AgentTooOld, AgentUnavailable, UpgradeError, check_agent, plan_release

DETAIL_MAX = 500


def scan_row(instance_id: int) -> InstanceScan:
    """The instance's scan row (created empty, not yet committed, when it has none)."""
    row = db.session.get(InstanceScan, instance_id)
    if row is None:
        row = InstanceScan(instance_id=instance_id, drifted_files=[], agent_facts={}, image_digests={})
        db.session.add(row)
    return row


def scan_agent(instance: Instance, row: InstanceScan) -> bool:
    """Ask the agent for its health and record its inventory on `row`; returns whether it answered.

    An agent that does not answer marks the row unreachable (since when is kept across scans)."""
    now = utcnow()
    try:
        driver = driver_for(instance, current_app.config["CCP"])
        health = check_agent(instance, driver, ())
    except (UpgradeError, DriverError) as exc:
        row.agent_at, row.sync_detail = now, _cut(getattr(exc, "message", str(exc)))
        row.unreachable_since = row.unreachable_since or now
        row.agent_facts = {**(row.agent_facts or {}), "reachable": False}
        return False
    runtime = health.get(HEALTH_RUNTIME) if isinstance(health.get(HEALTH_RUNTIME), dict) else {}
    agent_time = _parse_time(health.get("time"))
    details = health.get(HEALTH_INSTANCE_DETAILS) if isinstance(health.get(HEALTH_INSTANCE_DETAILS), dict) else {}
    mine = details.get(instance.slug) if isinstance(details.get(instance.slug), dict) else {}
    disk = mine.get("disk_free_bytes", health.get("disk_free_bytes"))
    problems = [p for p in runtime.get("problems") or () if isinstance(p, str)][:5]
    running = _running_digests(health, instance.slug)
    if IMAGES_CAPABILITY in (health.get("capabilities") or ()):
        try:
            running = {k: v for k, v in driver.image_digests().items()
                       if isinstance(k, str) and isinstance(v, str) and DIGEST.fullmatch(v)}
        except DriverError as exc:
            problems.append(_cut(f"running image digests: {exc.message}", 200))
    row.agent_facts = {
        "reachable": True,
        "version": str(health.get("version") or "unknown"),
        "protocol": health.get("protocol") if isinstance(health.get("protocol"), int) else None,
        "protocol_current": PROTOCOL_VERSION,
        "capabilities": sorted(c for c in health.get("capabilities") or () if isinstance(c, str)),
        "docker": runtime.get("docker"), "compose": runtime.get("compose"),
        "problems": problems,
        "disk_free_bytes": disk if isinstance(disk, int) and not isinstance(disk, bool) else None,
        "clock_skew_s": round((agent_time - now).total_seconds(), 1) if agent_time else None,
        "running_digests": running,
    }
    row.agent_at, row.unreachable_since = now, None
    return True


def scan_drift(instance: Instance, row: InstanceScan) -> str:
    """Preview a re-apply of the instance's current tag and record in_sync / drifted (which files) / unreachable /
    agent_too_old / error on `row`; returns the state. Reads only: nothing on the tenant changes."""
    now = utcnow()
    try:
        plan = plan_release(instance, instance.image_tag)
    except AgentTooOld as exc:
        state, files, detail = "agent_too_old", [], exc.message
    except AgentUnavailable as exc:
        state, files, detail = "unreachable", [], exc.message
        row.unreachable_since = row.unreachable_since or now
    except UpgradeError as exc:
        state, files, detail = "error", [], exc.message
    else:
        files = sorted(path for path, entry in plan.diff.items() if entry.changed)
        if instance.is_registered and any(c.change != "unchanged" for c in plan.env_changes or ()):
            files = sorted({*files, ENV_FILE})
        state, detail = ("drifted" if files else "in_sync"), None
        row.unreachable_since = None
    row.sync_state, row.drifted_files, row.sync_detail, row.drift_at = state, files, _cut(detail), now
    return state


def scan_updates(instance: Instance, row: InstanceScan, cache: dict | None = None) -> str:
    """Compare registry digests with the running ones and count newer allowed releases; records current /
    update_available / unknown (with why), `behind_by` and `newest_tag` on `row`; returns the update state.

    `cache` (per scan run) keeps each image's tag list and digests, so a fleet on one image asks the registry once."""
    cache = {} if cache is None else cache
    tag = instance.image_tag or current_app.config["CCP"].default_image_tag
    receivers = [r for r in db.session.execute(select(Receiver).where(Receiver.enabled.is_(True))).scalars()
                 if not r.instances or instance.slug in r.instances]
    row.update_at = utcnow()
    if not receivers:
        row.update_state, row.behind_by, row.newest_tag = "unknown", None, None
        row.update_detail = "no receiver names this tenant's image: add one (Receivers) to check its registry"
        return row.update_state
    states, reasons, behind, newest, digests = [], [], None, None, {}
    previous = row.image_digests or {}
    for receiver in receivers:
        try:
            registry, tags = _ask_registry(receiver, tag, cache)
        except (RegistryError, ValueError) as exc:
            states.append("unknown")
            reasons.append(_cut(f"{receiver.image}: {exc}", 200))
            continue
        known, source = _deployed_digest(instance, row, receiver.image, tag, previous.get(receiver.image))
        digests[receiver.image] = {"registry": registry, "deployed": known or registry, "source": source,
                                   "since": iso_utc(utcnow()) if source == "baseline" and not known else
                                   (previous.get(receiver.image) or {}).get("since")}
        if registry is None:
            states.append("unknown")
            reasons.append(f"{receiver.image}: the registry has no tag {tag}")
        elif known and known != registry:
            states.append("update_available")
            reasons.append(f"{receiver.image}:{tag} points to a new image ({registry[:19]}…, running {known[:19]}…)")
        else:
            states.append("current")
        count, best = _behind(receiver, tag, tags)
        if count is not None:
            behind = max(behind or 0, count)
            newest = best if count else newest
    row.image_digests = digests
    row.update_state = ("update_available" if "update_available" in states else
                        "unknown" if "unknown" in states else "current")
    row.behind_by, row.newest_tag = behind, newest
    if behind:
        reasons.append(f"behind by {behind} release{'s' if behind != 1 else ''} (newest allowed: {newest})")
    row.update_detail = _cut("; ".join(reasons)) or None
    return row.update_state


def _ask_registry(receiver: Receiver, tag: str, cache: dict) -> tuple[str | None, list[str]]:
    key = (receiver.image, receiver.registry_username, tag)
    if key not in cache:
        client = RegistryClient(ImageRef.parse(receiver.image), receiver.registry_username,
                                receiver.registry_password())
        digest = client.digest(tag)
        tags_key = (receiver.image, receiver.registry_username)
        if tags_key not in cache:
            cache[tags_key] = client.tags() if _has_policy(receiver) else []
        cache[key] = digest
    return cache[key], cache[(receiver.image, receiver.registry_username)]


def _has_policy(receiver: Receiver) -> bool:
    return bool(receiver.semver_range or receiver.tag_include or receiver.tag_exclude)


def _behind(receiver: Receiver, tag: str, tags: list[str]) -> tuple[int | None, str | None]:
    """How many allowed versions are newer than `tag`, and the newest (None, None without a policy or version)."""
    current = version_of(tag)
    if current is None or not _has_policy(receiver):
        return None, None
    try:
        policy = TagPolicy.of(receiver.semver_range, receiver.tag_include, receiver.tag_exclude)
    except PolicyInvalid:
        return None, None
    newer = {version_of(t) for t in tags if policy.refuses(t) is None and (version_of(t) or current) > current}
    return len(newer), policy.best(tags) if newer else None


def _deployed_digest(instance: Instance, row: InstanceScan, image: str, tag: str,
                     previous: dict | None) -> tuple[str | None, str]:
    """The digest the instance runs for `image`, and where that fact comes from."""
    running = _running_for(image, tag, (row.agent_facts or {}).get("running_digests") or {})
    if running:
        return running, "agent"
    last = db.session.execute(
        select(Upgrade.image_digest, Upgrade.finished_at)
        .where(Upgrade.instance_id == instance.id, Upgrade.status == "succeeded",
               or_(Upgrade.to_tag == tag, Upgrade.to_tag.is_(None)))
        .order_by(Upgrade.id.desc()).limit(1)).first()
    if last is not None and last.image_digest:
        return last.image_digest, "upgrade"
    since = _parse_time((previous or {}).get("since"))
    upgraded_since = last is not None and last.finished_at and since and as_utc(last.finished_at) > since
    if previous and previous.get("source") == "baseline" and previous.get("deployed") and not upgraded_since:
        return previous["deployed"], "baseline"
    return None, "baseline"  # first sight (or upgraded since): what the registry says now becomes the baseline


def release_image_digest(instance: Instance, tag: str, ask_running) -> tuple[str, str] | None:
    """(image, digest) of the tenant's release image running at `tag`: the image of a receiver that drives this
    instance (the one a registry announces), found in `ask_running()` (the agent's image digests), which is called
    only when such a receiver exists. None when there is none, or its image does not run at that tag."""
    receivers = db.session.execute(select(Receiver.image, Receiver.instances).order_by(Receiver.id)).all()
    images = [image for image, slugs in receivers if not slugs or instance.slug in slugs]
    running = ask_running() if images else {}
    for image in images:
        digest = _running_for(image, tag, running)
        if digest:
            return image, digest
    return None


def _running_for(image: str, tag: str, running: dict[str, str]) -> str | None:
    """The running digest of `image`:`tag` (the agent's keys are `repo:tag` as the compose file names the image)
    whichever way Docker and the receiver spell the repository (`nginx`, `docker.io/library/nginx` and
    `registry-1.docker.io/library/nginx` are one)."""
    if f"{image}:{tag}" in running:
        return running[f"{image}:{tag}"]
    try:
        wanted = str(ImageRef.parse(image))
    except ValueError:
        return None
    for ref, digest in running.items():
        repo, _, ref_tag = ref.rpartition(":")
        if ref_tag != tag or "/" in ref_tag:
            continue
        try:
            if str(ImageRef.parse(repo)) == wanted:
                return digest
        except ValueError:
            continue
    return None


def _running_digests(health: dict, slug: str) -> dict[str, str]:
    details = health.get(HEALTH_INSTANCE_DETAILS)
    mine = details.get(slug) if isinstance(details, dict) else None
    found = mine.get("image_digests") if isinstance(mine, dict) else None
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str) and v.startswith("sha256:")}


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _cut(text: str | None, limit: int = DETAIL_MAX) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
