"""The release plan: what "Upgrade to Release" will do to one tenant, computed the same way by preview and apply.

A plan is the rendered file set (without .env for registered tenants), the agent's view of the on-disk files, the
.env patch, and env coverage. Its hash covers the rendered contents, the on-disk hashes and the patch, so an apply
that carries a preview's hash refuses to run when either the templates or the tenant changed in between. A
`Preview` is what of a plan may be shown: everything but the rendered contents (a provisioned tenant's .env holds
its secrets).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from flask import current_app

from ccp.drivers import Driver, FileDiff
from ccp.envfile.compose_refs import env_coverage
from ccp.envfile.dotenv import parse_env
from ccp.rendering.context import managed_env_values
from ccp.rendering.render import render_instance
from ccp.rendering.sets import load_template_set

COMPOSE_FILE = "docker-compose.yml"
ENV_FILE = ".env"

# Agent capabilities each action needs ("agent too old" otherwise).
PREVIEW_CAPS = ("files.diff", "env.keys")
APPLY_CAPS = ("files.diff", "files.write", "snapshots.restore", "env.keys", "env.patch",
              "compose.pull", "compose.up", "compose.ps")


@dataclass
class Plan:
    """Everything an apply needs, plus what preview shows."""

    tag: str
    set_name: str
    set_version: str
    files: dict[str, str]  # rendered relpath -> content
    diff: dict[str, FileDiff]  # relpath -> the host's comparison with what is on disk
    env_patch: dict[str, str]  # registered tenants: CCP-managed keys -> value
    coverage: dict = field(default_factory=dict)
    plan_hash: str = ""

    def changed_files(self) -> dict[str, dict]:
        """Files to write (modified or created), each with the on-disk hash it must still have."""
        return {
            path: {"content": self.files[path], "expect_sha256": entry.old_sha256}
            for path, entry in sorted(self.diff.items())
            if entry.changed
        }

    def summary(self) -> dict[str, int]:
        """How many files are unchanged, modified and created."""
        counts = {"unchanged": 0, "modified": 0, "created": 0}
        for entry in self.diff.values():
            counts[entry.status] = counts.get(entry.status, 0) + 1
        return counts


@dataclass(frozen=True)
class Preview:
    """What "Upgrade to Release" would do to one instance, as preview shows it (the API and the dialog).

    `files` are the host's diffs by path; `coverage` is ccp.envfile.compose_refs.env_coverage's answer (total,
    present, missing, defaulted); `env_patch` the CCP-managed .env values a registered tenant gets."""

    instance: str  # the slug
    tag: str
    from_tag: str | None
    registered: bool
    set_name: str
    set_version: str
    plan_hash: str
    summary: dict[str, int]
    files: tuple[FileDiff, ...]
    coverage: dict
    env_patch: dict[str, str]

    @classmethod
    def of(cls, instance, plan: Plan) -> Preview:
        """The preview of `plan`, built for `instance` (read before the plan is applied: its tag is the old one)."""
        return cls(instance=instance.slug, tag=plan.tag, from_tag=instance.image_tag,
                   registered=instance.is_registered, set_name=plan.set_name, set_version=plan.set_version,
                   plan_hash=plan.plan_hash, summary=plan.summary(),
                   files=tuple(entry for _, entry in sorted(plan.diff.items())), coverage=plan.coverage,
                   env_patch=plan.env_patch)


def build_plan(instance, tag: str, driver: Driver) -> Plan:
    """Render the set for `tag`, ask the agent for the diff and the .env key names, compute coverage and the hash.

    Raises RenderError (template problem), DriverError (agent problem). Reads only; changes nothing anywhere.
    """
    settings = current_app.config["CCP"]
    extra = (settings.template_sets_dir,) if settings.template_sets_dir else ()
    result = render_instance(instance, tag, secrets=instance.decrypted_secrets(), extra_dirs=extra,
                             default_tag=settings.default_image_tag)
    files = dict(result.files)  # registered tenants: render_instance already leaves .env out
    diff = driver.diff_files(files)
    env_patch: dict[str, str] = {}
    if instance.is_registered:
        tset = load_template_set(instance.template_set, extra)
        env_patch = managed_env_values(instance, result.image_tag, default_tag=settings.default_image_tag,
                                       template_set=tset)
        available = driver.env_keys()["keys"]
    else:
        available = list(parse_env(files.get(ENV_FILE, "")))
    coverage = env_coverage(files.get(COMPOSE_FILE, ""), available, env_patch.keys())
    plan = Plan(tag=result.image_tag, set_name=result.set_name, set_version=result.set_version, files=files,
                diff=diff, env_patch=env_patch, coverage=coverage)
    plan.plan_hash = plan_hash(plan)
    return plan


def plan_hash(plan: Plan) -> str:
    """SHA-256 over the canonical form of what apply will do: tag, set, rendered contents, on-disk hashes, patch."""
    canonical = {
        "tag": plan.tag,
        "set": [plan.set_name, plan.set_version],
        "files": {p: hashlib.sha256(c.encode()).hexdigest() for p, c in sorted(plan.files.items())},
        "on_disk": {p: e.old_sha256 for p, e in sorted(plan.diff.items())},
        "env_patch": dict(sorted(plan.env_patch.items())),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

