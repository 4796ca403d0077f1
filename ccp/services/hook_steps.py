"""The upgrade job's hook and backup steps (issue #16): pre_upgrade, backup, post_upgrade in a release, and the
"restore" upgrade's restore_data. `run` is the runner's Run (ccp.services.runner): its step recorder, masker, driver.

A set that declares none of them gets these steps "skipped" with the reason. A failing pre_upgrade or backup stops
the release before anything is written (nothing to roll back); a failing post_upgrade counts as a failed verify, so
the job rolls the files back and restarts the old version. The automatic rollback never touches data: restoring the
backup is an operator's decision (ccp.services.upgrades.start_restore).
"""

from __future__ import annotations

from ccp.models import Instance
from ccp.rendering.render import RenderError
from ccp.services.backups import backup_line, hook_text, needed_caps, restore_text, template_set
from ccp.services.upgrades import AgentTooOld


class HookFailed(Exception):
    """A hook, backup or restore did not succeed; the message is the cause shown to operators."""


def check_caps(run) -> None:
    """Refuse (AgentTooOld) before any hook runs when the set declares hooks or a backup the agent cannot run."""
    instance: Instance = run.instance
    missing = [cap for cap in needed_caps(template_set(instance)) if cap not in (instance.agent_capabilities or [])]
    if missing:
        raise AgentTooOld(f"agent {instance.agent_version} at {run.driver.target} is too old for this template set: "
                          f"it lacks {', '.join(missing)}; upgrade the agent on the tenant host", {"missing": missing})


def pre_upgrade(run, files: dict[str, str]) -> None:
    """Run the release's own pre_upgrade hook, before anything is written."""
    _hook(run, "pre_upgrade", files)


def post_upgrade(run, files: dict[str, str]) -> None:
    """Run the release's post_upgrade hook after verify; a failure rolls the release back."""
    _hook(run, "post_upgrade", files)


def backup(run, files: dict[str, str]) -> None:
    """Run the set's backup hook into a new backup folder on the host; record its id on the upgrade."""
    tset = template_set(run.instance)
    if tset.backup is None:
        run.skip("backup", "the template set declares no [backup]")
        return
    upgrade, spec = run.upgrade, tset.backup
    with run.step("backup") as box:
        run.say(box, f"$ sh {spec.run.output}  (backup into $CCP_BACKUP_DIR; deadline {spec.run.deadline_s:g} s; "
                     "its output arrives when it ends)")
        result = run.driver.create_backup(hook_text(files, spec.run), spec.run.deadline_s, upgrade.id,
                                          keep=spec.keep, from_tag=upgrade.from_tag, to_tag=upgrade.to_tag)
        box["output"] = _output(spec.run.output, result)
        if not result.get("ok") or not result.get("backup_id"):
            raise HookFailed(f"backup failed ({_why(result)}); nothing written — the upgrade stops here")
        upgrade.backup_id = result["backup_id"]
        box["output"] += "\n" + backup_line(result["backup_id"], int(result.get("size_bytes") or 0),
                                            float(result.get("duration_s") or 0.0), spec.keep)


def restore_data(run) -> None:
    """The "restore" upgrade's first step: the set's restore hook with $CCP_BACKUP_DIR at the upgrade's backup."""
    upgrade = run.upgrade
    with run.step("restore_data") as box:
        try:
            tset, text = restore_text(run.instance)
        except (LookupError, RenderError, ValueError) as exc:  # ValueError: TemplateSetError, a bad tag
            raise HookFailed(f"cannot render the restore hook: {exc}") from None
        spec = tset.backup.restore
        run.say(box, f"$ sh {spec.output}  (restore from backup {upgrade.backup_id}; deadline {spec.deadline_s:g} s; "
                     "its output arrives when it ends)")
        result = run.driver.restore_backup(upgrade.backup_id, text, spec.deadline_s, upgrade.id,
                                           from_tag=upgrade.from_tag, to_tag=upgrade.to_tag)
        box["output"] = _output(spec.output, result) + (
            f"\nrestored backup {upgrade.backup_id} in {float(result.get('duration_s') or 0):.1f} s"
            if result.get("ok") else "")
        if not result.get("ok"):
            run.instance.attention = (f"restoring backup {upgrade.backup_id} (upgrade #{upgrade.id}) failed: the "
                                      "tenant's data may be partly restored — needs an operator")
            raise HookFailed(f"restore hook failed ({_why(result)})")


def _hook(run, name: str, files: dict[str, str]) -> None:
    hook = template_set(run.instance).hooks.get(name)
    if hook is None:
        run.skip(name, f"the template set declares no {name} hook")
        return
    upgrade = run.upgrade
    with run.step(name) as box:
        run.say(box, f"$ sh {hook.output}  (deadline {hook.deadline_s:g} s; its output arrives when it ends)")
        result = run.driver.run_hook(name, hook_text(files, hook), hook.deadline_s, upgrade.id,
                                     from_tag=upgrade.from_tag, to_tag=upgrade.to_tag)
        box["output"] = _output(hook.output, result)
        if not result.get("ok"):
            after = ("nothing written, containers untouched" if name == "pre_upgrade"
                     else "counts as a failed verify: rolling back")
            raise HookFailed(f"{name} hook failed ({_why(result)}); {after}")


def _output(path: str, result: dict) -> str:
    took = result.get("duration_s")
    head = f"$ sh {path}" + (f"  ({float(took):.1f} s)" if took is not None else "")
    return f"{head}\n{result.get('output_tail') or ''}".rstrip("\n")


def _why(result: dict) -> str:
    if result.get("timed_out"):
        return "timed out"
    if result.get("signal"):
        return f"killed by signal {result['signal']}"
    if result.get("exit_code") == 0:  # the agent's refusal of a backup hook that wrote nothing
        return "it wrote nothing into $CCP_BACKUP_DIR"
    return f"exit code {result.get('exit_code')}"
