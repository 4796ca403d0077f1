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
from ccp.envfile.secrecy import EnvChange
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
    env_changes: tuple[EnvChange, ...] | None = None  # per .env key; None when the agent cannot tell
    env_other_keys: tuple[str, ...] = ()  # registered tenants: the .env keys apply leaves alone

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
    present, missing, defaulted); `env_patch` the CCP-managed .env values a registered tenant gets.
    `env_changes` is the .env per key (secret values withheld; for a registered tenant only the keys apply sets),
    None when the agent is too old to tell; `env_other_keys` the registered tenant's keys apply leaves alone."""

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
    env_changes: tuple[EnvChange, ...] | None = None
    env_other_keys: tuple[str, ...] = ()

    @property
    def secrets_changed(self) -> tuple[str, ...]:
        """Names of the secret .env keys this release adds, removes or changes (empty when none or unknown)."""
        return tuple(c.key for c in self.env_changes or () if c.secret and c.change != "unchanged")

    @property
    def env_changed(self) -> tuple[EnvChange, ...]:
        """The .env keys whose value this release changes (added, removed, changed or set)."""
        return tuple(c for c in self.env_changes or () if c.change != "unchanged")

    @classmethod
    def of(cls, instance, plan: Plan) -> Preview:
        """The preview of `plan`, built for `instance` (read before the plan is applied: its tag is the old one)."""
        return cls(instance=instance.slug, tag=plan.tag, from_tag=instance.image_tag,
                   registered=instance.is_registered, set_name=plan.set_name, set_version=plan.set_version,
                   plan_hash=plan.plan_hash, summary=plan.summary(),
                   files=tuple(entry for _, entry in sorted(plan.diff.items())), coverage=plan.coverage,
                   env_patch=plan.env_patch, env_changes=plan.env_changes, env_other_keys=plan.env_other_keys)


def build_plan(instance, tag: str, driver: Driver, digest: str | None = None) -> Plan:
    """Render the set for `tag` (and `digest`, the release's image digest when it carries one), ask the agent for the
    diff and the .env key names, compute coverage and the hash.

    Raises RenderError (template problem), DriverError (agent problem). Reads only; changes nothing anywhere.
    """
    settings = current_app.config["CCP"]
    extra = (settings.template_sets_dir,) if settings.template_sets_dir else ()
    result = render_instance(instance, tag, secrets=instance.decrypted_secrets(), extra_dirs=extra,
                             default_tag=settings.default_image_tag, digest=digest)
    files = dict(result.files)  # registered tenants: render_instance already leaves .env out
    tset = load_template_set(instance.template_set, extra)
    diff = driver.diff_files(files, tuple(sorted(tset.secret_keys)))
    env_patch: dict[str, str] = {}
    other_keys: tuple[str, ...] = ()
    if instance.is_registered:
        env_patch = managed_env_values(instance, result.image_tag, default_tag=settings.default_image_tag,
                                       template_set=tset, digest=digest)
        answer = driver.env_keys(tuple(sorted(env_patch)))
        available = answer["keys"]
        changes = patch_changes(env_patch, available, answer.get("values"))
        other_keys = tuple(k for k in available if k not in env_patch)
    else:
        available = list(parse_env(files.get(ENV_FILE, "")))
        changes = diff[ENV_FILE].env if ENV_FILE in diff else None
    coverage = env_coverage(files.get(COMPOSE_FILE, ""), available, env_patch.keys())
    plan = Plan(tag=result.image_tag, set_name=result.set_name, set_version=result.set_version, files=files,
                diff=diff, env_patch=env_patch, coverage=coverage, env_changes=changes, env_other_keys=other_keys)
    plan.plan_hash = plan_hash(plan)
    return plan


def record_release(upgrade, plan: Plan) -> None:
    """Write on `upgrade` what its release puts on the tenant (the release history): the set, its version and the
    sha256 of each rendered file; a provisioned tenant's .env is left out (a hash of secrets is not history)."""
    upgrade.set_name, upgrade.set_version = plan.set_name, plan.set_version
    upgrade.file_hashes = {path: hashlib.sha256(content.encode()).hexdigest()
                           for path, content in sorted(plan.files.items()) if path != ENV_FILE}


def patch_changes(patch: dict[str, str], keys: list[str], old_values: dict | None) -> tuple[EnvChange, ...]:
    """A registered tenant's .env rows for the keys apply sets: old → new where the agent told the old value.

    A key the .env has but whose value the agent did not give (secret-looking, or an agent without "env.values")
    is "set": it will hold the new value, the old one is not shown."""
    rows = []
    for key, new in sorted(patch.items()):
        if key not in keys:
            rows.append(EnvChange(key, "added", False, None, new))
        elif old_values is not None and key in old_values:
            old = old_values[key]
            rows.append(EnvChange(key, "unchanged" if old == new else "changed", False, old, new))
        else:
            rows.append(EnvChange(key, "set", False, None, new))
    return tuple(rows)


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

