"""Agent updates over the API: the fleet's agents (what the scans found), a preview of the waves that would update
them to CCP's agent version, the start (bound to the preview's digest), progress per agent, cancel
(ccp.services.agent_updates)."""

from __future__ import annotations

from flask import g, url_for

from ccp.api.auth import require
from ccp.api.base import bp, json_body, reject_unknown
from ccp.api.errors import ApiError
from ccp.extensions import db
from ccp.models import AgentRollout
from ccp.services import agent_updates as svc

FIELDS = {"canary": "canary", "waveSize": "wave_size", "deadlineS": "deadline_s", "agents": "urls"}


def _options(data: dict, extra=()) -> dict:
    reject_unknown(data, (*FIELDS, *extra))
    out = {FIELDS[k]: v for k, v in data.items() if k in FIELDS}
    urls = out.get("urls")
    if "urls" in out and (not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls)):
        raise ApiError(422, "validation_failed", "invalid field(s): agents",
                       {"agents": "must be a non-empty list of agent URLs"})
    return out


def plan_json(planned: dict) -> dict:
    """A preview as the API shows it (camelCase sizes, as rollouts' previews)."""
    return {"target_version": planned["target_version"], "sha256": planned["sha256"],
            "wheel_bytes": planned["wheel_bytes"], "canary": planned["canary"], "waveSize": planned["wave_size"],
            "deadlineS": planned["deadline_s"], "digest": planned["digest"],
            "waves": [{"number": n + 1, "canary": n == 0 and planned["canary"] > 0,
                       "agents": [planned["agents"][u] for u in wave]} for n, wave in enumerate(planned["waves"])],
            "skipped": planned["skipped"], "unable": planned["unable"]}


@bp.get("/agents")
@require("read")
def list_agents():
    """The fleet's agents: URL, tenants, version, protocol, capabilities (from the latest agent scan)."""
    try:
        target = svc.agent_wheel().version
    except svc.NoAgentWheel:
        target = None
    return {"target_version": target, "items": [a.to_dict() for a in svc.agents()]}


@bp.post("/agent-updates/preview")
@require("admin")
def preview_agent_update():
    """Read-only: the waves an agent update to CCP's agent version would run, and the agents it leaves out."""
    return plan_json(svc.plan(**_options(json_body(allow_empty=True))))


@bp.post("/agent-updates")
@require("admin")
def start_agent_update():
    """Start updating the agents to CCP's agent version in waves (with `expect`: only as the preview showed)."""
    data = json_body(allow_empty=True)
    options = _options(data, ("expect",))
    expect = data.get("expect")
    if "expect" in data and not isinstance(expect, str):
        raise ApiError(422, "validation_failed", "invalid field(s): expect", {"expect": "must be a preview's digest"})
    rollout = svc.start(actor=g.actor, source="api", expect=expect, **options)
    return svc.rollout_dict(rollout), 202, {"Location": url_for("api.get_agent_update", rollout_id=rollout.id)}


@bp.get("/agent-updates")
@require("read")
def list_agent_updates():
    """The latest agent updates, newest first."""
    return {"items": [svc.rollout_dict(r) for r in svc.latest()]}


@bp.get("/agent-updates/<id:rollout_id>")
@require("read")
def get_agent_update(rollout_id: int):
    """An agent update with each agent's progress and outcome."""
    return svc.rollout_dict(_find(rollout_id))


@bp.post("/agent-updates/<id:rollout_id>/cancel")
@require("admin")
def cancel_agent_update(rollout_id: int):
    """Stop an agent update: waves not started never start (agents being updated finish)."""
    return svc.rollout_dict(svc.cancel(_find(rollout_id).id, actor=g.actor))


def _find(rollout_id: int) -> AgentRollout:
    rollout = db.session.get(AgentRollout, rollout_id)
    if rollout is None:
        raise ApiError(404, "not_found", f"no agent update #{rollout_id}")
    return rollout
