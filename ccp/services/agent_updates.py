"""Agent updates (issue #15): every agent updated to CCP's agent version in waves, like a release.

The unit is an agent URL (one agent may serve several tenants). The artifact is the light agent's wheel
(ccp/deploy/agent), built from this CCP's own source for its version, or the file CCP_AGENT_WHEEL names; CCP pushes
it in the signed request body (agents are often behind NAT and cannot fetch anything from CCP) with its SHA-256.

One RQ job per agent (`ccp.jobs.run_agent_update`): it reads the agent's health (it must report `agent.update`:
an older agent, or one not run by its launcher, is refused before anything is sent), sends the update, then polls
/v1/health until the agent answers the target version and, when that version reports `agent.update.checks`, its
trial says its own checks passed -- then confirms it (the agent keeps the new code) -- or reports that its launcher
restored the old one (a version whose checks fail exits at once: the reason names the check), or the deadline
passes (the agent restores itself). A version without `agent.update.checks` (an older protocol) is confirmed as
soon as it answers. The next wave
starts when every agent of the current one ended; a wave where any agent failed halts the rollout with the reason,
and the agents of later waves are never touched (`not_started`). A job that ends is what moves the rollout on: the
wave's last job starts the next wave with one conditional UPDATE, so two jobs ending at once never start it twice.

Mixed fleets keep working: CCP decides what to ask an agent by its capabilities, never by its version.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import logging
import re
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

import ccp
from ccp.drivers.agent_client import AgentClient, AgentUnreachable
from ccp.extensions import db, get_queue
from ccp.models import AgentRollout, AgentUpdate, Instance, InstanceScan, Upgrade, as_utc, iso_utc, utcnow
from ccp.protocol import AGENT_UPDATE_CAPABILITY, AGENT_UPDATE_CHECKS_CAPABILITY
from ccp.services.audit import record
from ccp.services.errors import ServiceError

log = logging.getLogger(__name__)

FINAL = ("succeeded", "halted", "cancelled")
AGENT_FINAL = ("succeeded", "failed", "not_started")
DEFAULT_DEADLINE_S = 120
POLL_S = 1.0
BUSY_RETRY_S = 2.0
SEND_TIMEOUT_S = 120.0
MAX_WAVE_SIZE = 1000
RESTART_MARGIN_S = 30  # beyond the agent's deadline: its restart into the new code, and back
LOST_MARGIN_S = 180  # beyond the job's own limit: an agent's job running this long was lost


class AgentUpdateInvalid(ServiceError):
    status, code = 422, "validation_failed"


class AgentUpdateConflict(ServiceError):
    status, code = 409, "agent_update_active"


class AgentUpdateStale(ServiceError):
    status, code = 409, "preview_stale"


class NoAgentWheel(ServiceError):
    status, code = 503, "no_agent_wheel"


# --- the artifact -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentWheel:
    version: str
    sha256: str
    data: bytes
    source: str  # "built from CCP's source" or the file's path

    @property
    def size(self) -> int:
        return len(self.data)


_wheel_cache: dict[tuple, AgentWheel] = {}
_wheel_lock = threading.Lock()


def _metadata_version(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            found = re.search(r"^Version: (\S+)$", zf.read(meta).decode("utf-8", "replace"), re.M)
    except (zipfile.BadZipFile, StopIteration, OSError):
        found = None
    if not found:
        raise NoAgentWheel("the agent wheel is not a ccp-agent wheel (no METADATA with a Version)")
    return found.group(1)


def agent_wheel() -> AgentWheel:
    """The wheel agent updates push: CCP_AGENT_WHEEL, or the light agent built from this CCP's own source for its
    version (the build is deterministic: every worker builds the same bytes). Raises NoAgentWheel."""
    path = current_app.config["CCP"].agent_wheel
    if path is not None:
        try:
            key = ("file", str(path), path.stat().st_mtime_ns)
        except OSError as exc:
            raise NoAgentWheel(f"CCP_AGENT_WHEEL {path} cannot be read ({exc.strerror})") from None
    else:
        key = ("built", ccp.__version__)
    with _wheel_lock:
        if key not in _wheel_cache:
            if path is not None:
                data, source = path.read_bytes(), str(path)
            else:
                data, source = _build(), "built from CCP's source"
            _wheel_cache.clear()
            _wheel_cache[key] = AgentWheel(_metadata_version(data), hashlib.sha256(data).hexdigest(), data, source)
        return _wheel_cache[key]


def _build() -> bytes:
    backend_path = Path(ccp.__file__).resolve().parent / "deploy" / "agent" / "ccp_agent_build.py"
    if not backend_path.is_file():
        raise NoAgentWheel("this CCP install has no agent build backend: set CCP_AGENT_WHEEL to a ccp-agent wheel")
    spec = importlib.util.spec_from_file_location("ccp_agent_build_for_updates", backend_path)
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    with tempfile.TemporaryDirectory(prefix="ccp-agent-wheel-") as tmp:
        try:
            name = backend.build_wheel(tmp)
        except (OSError, ValueError) as exc:
            raise NoAgentWheel(f"the agent wheel could not be built: {exc}") from None
        return (Path(tmp) / name).read_bytes()


# --- the fleet of agents ----------------------------------------------------------------------------------------


@dataclass
class AgentRow:
    url: str
    slugs: list[str]
    facts: dict  # the latest agent scan of its first tenant (version, protocol, capabilities, reachable)
    seen_at: object

    @property
    def version(self) -> str | None:
        return self.facts.get("version")

    @property
    def can_update(self) -> bool:
        return AGENT_UPDATE_CAPABILITY in (self.facts.get("capabilities") or ())

    def to_dict(self) -> dict:
        return {"url": self.url, "tenants": self.slugs, "version": self.version,
                "protocol": self.facts.get("protocol"), "capabilities": self.facts.get("capabilities") or [],
                "reachable": self.facts.get("reachable"), "agent_update": self.can_update,
                "seen_at": iso_utc(self.seen_at) if self.seen_at else None}


def agents() -> list[AgentRow]:
    """Every agent URL of the fleet with the tenants it serves and what the latest agent scan found (no agent is
    asked here: the page and the API read the scan rows)."""
    rows = db.session.execute(
        select(Instance.slug, Instance.agent_url, InstanceScan.agent_facts, InstanceScan.agent_at)
        .outerjoin(InstanceScan, InstanceScan.instance_id == Instance.id)
        .where(Instance.driver == "remote", Instance.agent_url.is_not(None))
        .order_by(Instance.agent_url, Instance.slug)).all()
    out: dict[str, AgentRow] = {}
    for slug, url, facts, seen in rows:
        row = out.setdefault(url, AgentRow(url, [], {}, None))
        row.slugs.append(slug)
        if facts and (row.seen_at is None or (seen and seen > row.seen_at)):
            row.facts, row.seen_at = facts, seen
    return list(out.values())


def _client(url: str) -> AgentClient:
    """A signed client for the agent at ``url`` with the key of a tenant it serves."""
    settings = current_app.config["CCP"]
    for inst in Instance.query.filter_by(agent_url=url).order_by(Instance.id):
        key = inst.agent_key()
        if inst.agent_key_id and key:
            return AgentClient(url, inst.agent_key_id, key.encode(), connect_timeout=settings.agent_connect_timeout_s,
                               read_timeout=settings.agent_read_timeout_s)
    raise AgentUpdateInvalid(f"no tenant of the agent at {url} has a key configured")


# --- plan, preview, start ---------------------------------------------------------------------------------------


def _int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AgentUpdateInvalid(f"{name} must be a whole number from {low} to {high}",
                                 {name: f"a whole number from {low} to {high}"})
    return value


def plan(*, canary: int = 1, wave_size: int = 5, urls: list[str] | None = None,
         deadline_s: int = DEFAULT_DEADLINE_S) -> dict:
    """The waves an update to CCP's agent version would run (the preview; `start` runs the same plan).

    Agents whose scan says they run the target already are skipped; those whose scan lacks `agent.update` are
    listed as unable (the job would refuse them). `digest` binds a start to this preview."""
    canary = _int(canary, "canary", 0, MAX_WAVE_SIZE)
    wave_size = _int(wave_size, "wave_size", 1, MAX_WAVE_SIZE)
    deadline_s = _int(deadline_s, "deadline_s", 10, 900)
    wheel = agent_wheel()
    fleet = agents()
    if urls is not None:
        known = {a.url for a in fleet}
        unknown = [u for u in urls if u not in known]
        if unknown:
            raise AgentUpdateInvalid(f"no tenant uses the agent at {unknown[0]}", {"agents": "unknown agent URL"})
        fleet = [a for a in fleet if a.url in set(urls)]
    skipped = [{"url": a.url, "reason": f"already runs {wheel.version}"} for a in fleet if a.version == wheel.version]
    unable = [{"url": a.url, "reason": "its last scan reports no agent.update capability (an older agent, or not "
               "run by its launcher)"} for a in fleet if a.version != wheel.version and a.facts and not a.can_update]
    left = {s["url"] for s in skipped + unable}
    todo = [a for a in fleet if a.url not in left]
    waves: list[list[str]] = []
    if canary and todo:
        waves.append([a.url for a in todo[:canary]])
    rest = [a.url for a in todo[canary:]] if canary else [a.url for a in todo]
    waves += [rest[i:i + wave_size] for i in range(0, len(rest), wave_size)]
    slugs = {a.url: a.slugs for a in fleet}
    body = {"target_version": wheel.version, "sha256": wheel.sha256, "waves": waves, "deadline_s": deadline_s}
    digest = hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()[:16]
    return {**body, "wheel_bytes": wheel.size, "source": wheel.source, "canary": canary, "wave_size": wave_size,
            "skipped": skipped, "unable": unable, "tenants": {u: slugs[u] for w in waves for u in w},
            "agents": {a.url: a.to_dict() for a in fleet}, "digest": digest}


def start(*, actor: str, source: str = "api", canary: int = 1, wave_size: int = 5, urls: list[str] | None = None,
          deadline_s: int = DEFAULT_DEADLINE_S, expect: str | None = None) -> AgentRollout:
    """Plan the waves and start the first one. Raises AgentUpdateConflict while another agent update runs,
    AgentUpdateStale when ``expect`` (a preview's digest) no longer matches, AgentUpdateInvalid with no agent to
    update."""
    planned = plan(canary=canary, wave_size=wave_size, urls=urls, deadline_s=deadline_s)
    if expect is not None and expect != planned["digest"]:
        raise AgentUpdateStale("the fleet's agents changed since the preview: preview again")
    if not planned["waves"]:
        raise AgentUpdateInvalid(f"no agent to update to {planned['target_version']}")
    running = AgentRollout.query.filter_by(status="running").first()
    if running is not None:
        raise AgentUpdateConflict(f"agent update #{running.id} is running: wait for it or cancel it")
    rollout = AgentRollout(target_version=planned["target_version"], wheel_sha256=planned["sha256"],
                           status="running", waves=planned["waves"], current_wave=0, deadline_s=deadline_s,
                           actor=actor, source=source)
    db.session.add(rollout)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise AgentUpdateConflict("another agent update started meanwhile") from None
    for n, wave in enumerate(planned["waves"]):
        for url in wave:
            db.session.add(AgentUpdate(rollout_id=rollout.id, agent_url=url, wave=n, status="waiting",
                                       slugs=planned["tenants"][url], from_version=planned["agents"][url]["version"]))
    db.session.commit()
    record(actor, "agent_update.start", target=f"agent-update:{rollout.id}",
           detail={"version": rollout.target_version, "sha256": rollout.wheel_sha256, "waves": len(rollout.waves),
                   "agents": sum(len(w) for w in rollout.waves), "skipped": len(planned["skipped"]),
                   "unable": len(planned["unable"])})
    _start_wave(rollout, 0)
    return rollout


def _start_wave(rollout: AgentRollout, wave: int) -> None:
    timeout = int(_job_limit_s(rollout))
    for item in AgentUpdate.query.filter_by(rollout_id=rollout.id, wave=wave).order_by(AgentUpdate.id):
        get_queue().enqueue("ccp.jobs.run_agent_update", item.id, job_timeout=timeout,
                            description=f"agent update #{rollout.id}: {item.agent_url}")


def _job_limit_s(rollout: AgentRollout) -> float:
    """The longest an agent's job can take: waiting for a busy agent (up to the deadline), sending, then waiting for
    it to come back (the deadline and 30 s), with room for the health checks and the confirm."""
    return 2 * rollout.deadline_s + SEND_TIMEOUT_S + 120


def cancel(rollout_id: int, *, actor: str) -> AgentRollout:
    """Stop an agent update: waves not started are never started (agents being updated finish their update)."""
    rollout = db.session.get(AgentRollout, rollout_id)
    if rollout is None:
        raise AgentUpdateInvalid(f"no agent update #{rollout_id}")
    if rollout.status != "running":
        raise AgentUpdateConflict(f"agent update #{rollout_id} has ended ({rollout.status})")
    _finish(rollout.id, "cancelled", f"cancelled by {actor}")
    record(actor, "agent_update.cancel", target=f"agent-update:{rollout.id}")
    db.session.refresh(rollout)
    return rollout


# --- one agent --------------------------------------------------------------------------------------------------


def run_agent_update(update_id: int) -> str:
    """The job: update one agent (see the module docstring), then let the rollout move on. Returns its status."""
    item = db.session.get(AgentUpdate, update_id)
    if item is None or item.status in AGENT_FINAL:
        return "gone" if item is None else item.status
    rollout = db.session.get(AgentRollout, item.rollout_id)
    if rollout.status != "running":
        _end(item, "not_started", f"the agent update {rollout.status} before this agent's turn")
        return item.status
    item.status, item.started_at = "running", utcnow()
    db.session.commit()
    try:
        status, reason, answered = _update_agent(item.agent_url, rollout)
    except ServiceError as exc:  # e.g. no tenant of the agent has a key any more
        status, reason, answered = "failed", exc.message, None
    except Exception as exc:  # noqa: BLE001 - recorded on the agent's row; the rollout must still move on
        log.exception("agent update of %s", item.agent_url)
        status, reason, answered = "failed", f"CCP error: {type(exc).__name__}", None
    if answered:
        item.to_version = answered
    _end(item, status, reason)
    record(rollout.actor, "agent_update.agent", target=item.agent_url, result="ok" if status == "succeeded" else
           "failed", detail={"rollout": rollout.id, "version": rollout.target_version, "status": status,
                             "reason": reason})
    if status == "succeeded":
        _rescan(item.agent_url)
    wave_ended(rollout.id, item.wave)
    return item.status


def _end(item: AgentUpdate, status: str, reason: str | None) -> None:
    item.status, item.reason, item.finished_at = status, (reason or "")[:500] or None, utcnow()
    db.session.commit()


def _health(client: AgentClient) -> dict | None:
    try:
        status, body = client.request("GET", "/v1/health", timeout=10)
    except AgentUnreachable:
        return None
    return body if status == 200 else None


def _update_agent(url: str, rollout: AgentRollout) -> tuple[str, str, str | None]:
    """Send the update and wait for the agent to come back: (status, reason, the version it answered last)."""
    client = _client(url)
    try:
        health = _health(client)
        if health is None:
            return "failed", "the agent did not answer its health check before the update", None
        version = str(health.get("version"))
        if AGENT_UPDATE_CAPABILITY not in (health.get("capabilities") or ()):
            return "failed", (f"the agent (version {version}) cannot update itself: it reports no agent.update "
                              "capability (an older agent, or not run by its launcher); update it by hand"), version
        if version == rollout.target_version:
            return "succeeded", f"already runs {version}", version
        wheel = agent_wheel()
        if wheel.sha256 != rollout.wheel_sha256 or wheel.version != rollout.target_version:
            return "failed", "CCP's agent wheel changed since this agent update started", version
        before = health.get("last_update")
        body = {"version": wheel.version, "sha256": wheel.sha256, "wheel": base64.b64encode(wheel.data).decode(),
                "deadline_s": rollout.deadline_s}
        busy_until = time.monotonic() + rollout.deadline_s
        while _upgrading(url):  # a tenant of this agent is being upgraded: let it end first
            if time.monotonic() > busy_until:
                return "failed", "a tenant of this agent was being upgraded for the whole deadline", version
            time.sleep(BUSY_RETRY_S)
        while True:
            try:
                status, answer = client.request("POST", "/v1/agent/update", json=body, timeout=SEND_TIMEOUT_S)
            except AgentUnreachable as exc:
                return "failed", f"sending the update: {exc}", version
            busy = status == 409 and ((answer or {}).get("error") or {}).get("code") == "busy"
            if not busy or time.monotonic() > busy_until:
                break
            time.sleep(BUSY_RETRY_S)  # a tenant's operation runs on the agent: it is never cut short
        if status != 202:
            error = (answer or {}).get("error") or {}
            hint = " (raise the agent's limits.max_body_bytes)" if status == 413 else ""
            return "failed", f"the agent refused the update: HTTP {status} {error.get('message') or ''}{hint}", version
        return _await(client, rollout, version, before)
    finally:
        client.close()


def _upgrading(url: str) -> bool:
    """Whether an upgrade of a tenant this agent serves is running (in another worker; a queued one may wait behind
    this job in the same worker, so it is not waited for)."""
    db.session.expire_all()
    return db.session.execute(select(Upgrade.id).join(Instance, Instance.id == Upgrade.instance_id)
                              .where(Instance.agent_url == url, Upgrade.status == "running")
                              .limit(1)).first() is not None


def _checks_pending(health: dict, target: str) -> bool:
    """Whether the target version answers but must not be confirmed yet: it runs its own checks on trial
    (`agent.update.checks`) and its `trial` block does not say they passed. An agent of an older protocol reports
    no such capability: it is confirmed on its version alone."""
    if AGENT_UPDATE_CHECKS_CAPABILITY not in (health.get("capabilities") or ()):
        return False
    trial = health.get("trial")
    return not (isinstance(trial, dict) and trial.get("target") == target and trial.get("checks") == "passed")


def _restored_reason(last: dict) -> str:
    reason = str(last.get("reason") or "")
    if "exited with code 78 " in reason:  # a launcher older than trial checks reports only the new code's exit
        reason += " (78: its own checks failed on start; `ccp-agent check` on the host says which)"
    return reason


def _await(client: AgentClient, rollout: AgentRollout, old: str, before) -> tuple[str, str, str | None]:
    """Poll health until the agent answers the target with its checks passed (then confirm), says it restored the
    old code, or the deadline (the agent's, plus a margin for its restart) passes."""
    target, seen, unchecked = rollout.target_version, old, False
    ends = time.monotonic() + rollout.deadline_s + RESTART_MARGIN_S
    while time.monotonic() < ends:
        health = _health(client)
        if health is not None:
            seen = str(health.get("version"))
            last = health.get("last_update")
            fresh = isinstance(last, dict) and last != before and last.get("target") == target
            if seen == target and fresh and last.get("outcome") == "succeeded":
                return "succeeded", f"answered {target} and was confirmed", seen  # confirmed by an earlier try
            if seen == target and _checks_pending(health, target):
                unchecked = True
                time.sleep(POLL_S)
                continue
            if seen == target:
                try:
                    status, answer = client.request("POST", "/v1/agent/update/confirm", json={"version": target},
                                                    timeout=30)
                except AgentUnreachable as exc:
                    return "failed", f"confirming {target}: {exc}", seen
                if status == 200:
                    checked = " after its checks passed" if AGENT_UPDATE_CHECKS_CAPABILITY in (
                        health.get("capabilities") or ()) else ""
                    return "succeeded", f"answered {target}{checked} and was confirmed", seen
                message = ((answer or {}).get("error") or {}).get("message") or f"HTTP {status}"
                return "failed", f"the agent refused the confirmation: {message}", seen
            if fresh and last.get("outcome") == "restored":
                return "failed", f"the agent restored {seen}: {_restored_reason(last)}", seen
        time.sleep(POLL_S)
    waited = rollout.deadline_s + RESTART_MARGIN_S
    if unchecked and seen == target:
        return "failed", f"answered {target} but its checks did not report passed within {waited} s", seen
    return "failed", f"did not come back answering {target} within {waited} s", seen


def _rescan(url: str) -> None:
    """Refresh the inventory of the agent's tenants (the fleet page shows the new version at once)."""
    from ccp.services.scans import scan_agent, scan_row

    try:
        for inst in Instance.query.filter_by(agent_url=url):
            scan_agent(inst, scan_row(inst.id))
        db.session.commit()
    except Exception:  # noqa: BLE001 - the next scheduled scan records it
        db.session.rollback()
        log.warning("could not refresh the inventory of the agent at %s", url)


# --- waves ------------------------------------------------------------------------------------------------------


def wave_ended(rollout_id: int, wave: int) -> None:
    """If every agent of ``wave`` ended: halt the rollout at a failure, else start the next wave or finish."""
    db.session.expire_all()
    items = AgentUpdate.query.filter_by(rollout_id=rollout_id, wave=wave).all()
    if any(i.status not in AGENT_FINAL for i in items):
        return
    failed = [i for i in items if i.status == "failed"]
    rollout = db.session.get(AgentRollout, rollout_id)
    if failed:
        first = failed[0]
        _finish(rollout_id, "halted", f"wave {wave + 1}: {first.agent_url} {first.reason}"[:500])
        return
    nxt = wave + 1
    moved = db.session.execute(update(AgentRollout).where(AgentRollout.id == rollout_id,
                                                          AgentRollout.current_wave == wave,
                                                          AgentRollout.status == "running")
                               .values(current_wave=nxt)).rowcount
    db.session.commit()
    if not moved:
        return
    if nxt < len(rollout.waves):
        db.session.refresh(rollout)
        _start_wave(rollout, nxt)
    else:
        _finish(rollout_id, "succeeded", None)


def _finish(rollout_id: int, status: str, error: str | None) -> None:
    """End the rollout once (conditional UPDATE); agents still waiting are marked not_started."""
    ended = db.session.execute(update(AgentRollout).where(AgentRollout.id == rollout_id,
                                                          AgentRollout.status == "running")
                               .values(status=status, error=error, finished_at=utcnow())).rowcount
    if ended:
        db.session.execute(update(AgentUpdate).where(AgentUpdate.rollout_id == rollout_id,
                                                     AgentUpdate.status == "waiting")
                           .values(status="not_started", reason=f"the agent update {status} before its wave"))
    db.session.commit()
    if ended:
        rollout = db.session.get(AgentRollout, rollout_id)
        record(rollout.actor if status != "cancelled" else "system", f"agent_update.{status}",
               target=f"agent-update:{rollout_id}", result="ok" if status == "succeeded" else status,
               detail={"version": rollout.target_version, "error": error})


def end_lost_jobs(now=None) -> int:
    """Housekeeping: an agent's job that has run far past what it can take (its worker died) counts as failed, so
    its wave ends and the rollout halts instead of waiting for ever. Returns how many were ended."""
    now, ended = now or utcnow(), 0
    rows = db.session.execute(select(AgentUpdate, AgentRollout).join(AgentRollout)
                              .where(AgentRollout.status == "running", AgentUpdate.status == "running")).all()
    for item, rollout in rows:
        limit = _job_limit_s(rollout) + LOST_MARGIN_S
        if item.started_at is not None and (now - as_utc(item.started_at)).total_seconds() > limit:
            claimed = db.session.execute(update(AgentUpdate).where(AgentUpdate.id == item.id,
                                                                   AgentUpdate.status == "running")
                                         .values(status="failed", finished_at=now,
                                                 reason="its job was lost (the worker stopped); check the agent's "
                                                        "version by hand")).rowcount
            db.session.commit()
            if claimed:
                ended += 1
                wave_ended(rollout.id, item.wave)
    return ended


# --- reading ----------------------------------------------------------------------------------------------------


def rollout_dict(rollout: AgentRollout) -> dict:
    """An agent update with each agent's progress, for the API and the page."""
    items = AgentUpdate.query.filter_by(rollout_id=rollout.id).order_by(AgentUpdate.wave, AgentUpdate.id).all()
    counts: dict[str, int] = {}
    for i in items:
        counts[i.status] = counts.get(i.status, 0) + 1
    return {"id": rollout.id, "target_version": rollout.target_version, "sha256": rollout.wheel_sha256,
            "status": rollout.status, "current_wave": rollout.current_wave, "waves": len(rollout.waves),
            "deadline_s": rollout.deadline_s, "error": rollout.error, "actor": rollout.actor,
            "created_at": iso_utc(rollout.created_at), "finished_at": iso_utc(rollout.finished_at),
            "counts": counts,
            "agents": [{"url": i.agent_url, "tenants": i.slugs, "wave": i.wave, "status": i.status,
                        "from_version": i.from_version, "to_version": i.to_version, "reason": i.reason,
                        "started_at": iso_utc(i.started_at), "finished_at": iso_utc(i.finished_at)}
                       for i in items]}


def latest(limit: int = 10) -> list[AgentRollout]:
    return AgentRollout.query.order_by(AgentRollout.id.desc()).limit(limit).all()
