"""Template-set hooks and data backups, CCP's side (issue #16): what a set declares, the hook text a release sends,
and the backup an upgrade took, as the upgrade page and the API show it.

The agent runs the hooks (ccp.hostops.hooks); the upgrade job runs them as steps (ccp.services.hook_steps). A backup's
size and duration are recorded as the backup step's output (one line, `backup_line`), the only place CCP keeps them:
`backup_of` reads them back for the page and the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app

from ccp.protocol import BACKUPS_CAPABILITY, HOOKS_CAPABILITY
from ccp.rendering.render import render_instance
from ccp.rendering.sets import Hook, TemplateSet, TemplateSetError, load_template_set

BACKUP_ID = re.compile(r"[0-9]{1,10}-[0-9]{8}T[0-9]{6}Z(-[0-9]+)?")  # the agent's own form (ccp.hostops.hooks)
_LINE = re.compile(r"^backup (?P<id>\S+): .*\((?P<bytes>\d+) bytes\) in (?P<secs>[0-9.]+) s", re.M)


@dataclass(frozen=True)
class BackupInfo:
    """The data backup an upgrade took before writing anything: the agent's id, its size and how long it took."""

    id: str
    upgrade_id: int
    size_bytes: int | None
    duration_s: float | None

    @property
    def size_text(self) -> str:
        return human_size(self.size_bytes) if self.size_bytes is not None else "size unknown"


def template_set(instance) -> TemplateSet:
    """The instance's template set as CCP loads it (operator sets dir first). Raises TemplateSetError."""
    settings = current_app.config["CCP"]
    extra = (settings.template_sets_dir,) if settings.template_sets_dir else ()
    return load_template_set(instance.template_set or "default", extra)


def needed_caps(tset: TemplateSet) -> tuple[str, ...]:
    """The agent capabilities a release of this set needs beyond the plain apply: none when it declares nothing."""
    return ((HOOKS_CAPABILITY,) if tset.hooks else ()) + ((BACKUPS_CAPABILITY,) if tset.backup else ())


def hooks_time_s(instance) -> float:
    """The most time the set's hooks and backup may add to an upgrade job (their deadlines summed), so the job's
    own timeout covers them; 0 when the set declares none or cannot be loaded (the job then fails on its own)."""
    try:
        tset = template_set(instance)
    except TemplateSetError:
        return 0.0
    backup = (tset.backup.run.deadline_s + tset.backup.restore.deadline_s) if tset.backup else 0.0
    return sum(hook.deadline_s for hook in tset.hooks.values()) + backup


def hook_text(files: dict[str, str], hook: Hook) -> str:
    """The rendered text of `hook` among a release's rendered `files` (a set file always renders)."""
    return files[hook.output]


def restore_text(instance) -> tuple[TemplateSet, str]:
    """The set and the rendered restore hook of the release the tenant runs now (its current tag): the commands that
    put data back are those of the containers running when the restore happens. Raises TemplateSetError,
    RenderError, LookupError (the set declares no backup)."""
    tset = template_set(instance)
    if tset.backup is None:
        raise LookupError(f"template set {tset.name} {tset.version} declares no [backup] (with its restore hook)")
    settings = current_app.config["CCP"]
    extra = (settings.template_sets_dir,) if settings.template_sets_dir else ()
    files = render_instance(instance, instance.image_tag, secrets=instance.decrypted_secrets(), extra_dirs=extra,
                            default_tag=settings.default_image_tag).files
    return tset, hook_text(files, tset.backup.restore)


def backup_line(backup_id: str, size_bytes: int, duration_s: float, keep: int) -> str:
    """The backup step's output line (read back by `backup_of`)."""
    return (f"backup {backup_id}: {human_size(size_bytes)} ({size_bytes} bytes) in {duration_s:.1f} s; "
            f"the host keeps the last {keep}")


def backup_of(upgrade) -> BackupInfo | None:
    """The backup an upgrade (an UpgradeStatus or Upgrade) took, or None. A restore upgrade's `backup_id` names the
    backup it restores, not one it took: None for it."""
    if not upgrade.backup_id or upgrade.kind == "restore":
        return None
    step = next((s for s in upgrade.steps if s.name == "backup" and s.output_tail), None)
    match = _LINE.search(step.output_tail) if step else None
    if match is None or match["id"] != upgrade.backup_id:
        return BackupInfo(upgrade.backup_id, upgrade.id, None, None)
    return BackupInfo(upgrade.backup_id, upgrade.id, int(match["bytes"]), float(match["secs"]))


def source_upgrade_id(backup_id: str) -> int | None:
    """The id of the upgrade that took a backup (its id starts with it), None for an id of another form."""
    return int(backup_id.split("-", 1)[0]) if BACKUP_ID.fullmatch(backup_id or "") else None


def human_size(size: int) -> str:
    """'512 bytes', '12.3 KiB', '4.0 MiB', '1.2 GiB'."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{size} bytes"  # pragma: no cover


def restored_backup(upgrade) -> BackupInfo | None:
    """The backup a "restore" upgrade (an UpgradeStatus or Upgrade) puts back, with the upgrade that took it (its
    size and duration are on that upgrade's page); None for any other upgrade."""
    if upgrade.kind != "restore" or not upgrade.backup_id:
        return None
    return BackupInfo(upgrade.backup_id, source_upgrade_id(upgrade.backup_id) or 0, None, None)
