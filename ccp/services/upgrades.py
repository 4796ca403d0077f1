"""Upgrades: preview a release, start release/quick/full upgrades as RQ jobs, cancel, serialise.

Interface (implementation landing in this module; callers code against these names):

# ccp/services/upgrades.py
class UpgradeError(Exception):          # .status (HTTP code), .code (short string), .message, .details (dict)
class TagInvalid(UpgradeError)          # 422 code "invalid_tag"
class UpgradeConflict(UpgradeError)     # 409 code "upgrade_active" (another upgrade queued/running)
class PlanStale(UpgradeError)           # 409 code "plan_stale"
class AgentTooOld(UpgradeError)         # 409 code "agent_too_old" (message names the missing capability)
class AgentUnavailable(UpgradeError)    # 502 code "agent_unavailable" (message names the agent URL)
class NotCancellable(UpgradeError)      # 409

def preview_release(instance, tag: str | None) -> dict
    # {"instance": slug, "tag": "v2", "from_tag": "v1", "registered": bool, "set": {"name","version"},
    #  "plan_hash": "hex64",
    #  "summary": {"unchanged": n, "modified": n, "created": n},
    #  "files": [{"path", "status": "unchanged|modified|created", "old_sha256", "new_sha256",
    #             "added", "removed", "diff": "unified diff text, .env values masked", "truncated": bool}],
    #  "coverage": {"total", "present", "missing": [...], "defaulted": [...]},
    #  "env_patch": {"IMAGE_TAG": "v2", ...}   (only CCP-managed, non-secret keys; empty for provisioned tenants)
    # }
def start_release(instance, tag: str | None, *, plan: str | None = None, actor: str) -> Upgrade
def start_quick(instance, *, actor: str) -> Upgrade          # Quick Upgrade: pull + up + verify
def start_full(instance, *, actor: str) -> Upgrade           # Upgrade Now: tenant's scripts/upgrade.sh + verify
def cancel_upgrade(upgrade, *, actor: str) -> Upgrade
def upgrade_to_dict(upgrade) -> dict
    # {"id", "instance": slug, "instance_id", "kind", "status", "from_tag", "to_tag", "plan_hash", "actor", "error",
    #  "created_at", "started_at", "finished_at", "duration_s",
    #  "steps": [{"name", "status": "pending|running|succeeded|failed|skipped", "started_at", "finished_at",
    #             "duration_s", "output_tail"}]}

Upgrade statuses: queued, running (active); succeeded, failed, rolled_back, rollback_failed, interrupted, cancelled.
Release steps in order: render, check_plan, write, env_patch, pull, up, verify (+ restore, rollback_up,
rollback_verify when a rollback happens).
"""

from __future__ import annotations


class UpgradeError(Exception):
    """An upgrade request cannot be carried out. `status` is the HTTP code, `code` a short machine string."""

    status = 400
    code = "upgrade_error"

    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class TagInvalid(UpgradeError):
    status, code = 422, "invalid_tag"


class UpgradeConflict(UpgradeError):
    status, code = 409, "upgrade_active"


class PlanStale(UpgradeError):
    status, code = 409, "plan_stale"


class AgentTooOld(UpgradeError):
    status, code = 409, "agent_too_old"


class AgentUnavailable(UpgradeError):
    status, code = 502, "agent_unavailable"


class NotCancellable(UpgradeError):
    status, code = 409, "not_cancellable"
