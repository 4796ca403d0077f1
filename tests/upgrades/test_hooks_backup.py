"""Hooks and the data backup through the service layer, the RQ worker and a real install dir (local driver, the fake
compose): the order they run in, a failing pre_upgrade that leaves the tenant untouched, a failing post_upgrade that is
rolled back without touching data, and the operator-confirmed restore that puts the data back.

The set is the bundled default set copied into an operator sets dir (it shadows the bundled one) with four hooks: each
logs what it saw to hooks.log in the install dir; the "data" is data/records.txt; a file named fail-<hook> makes that
hook fail after printing the tenant's secret (which must arrive masked)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rq.job import Job

from ccp.extensions import get_redis
from ccp.models import AuditEvent, Upgrade
from ccp.rendering.sets import BUNDLED_DIR
from ccp.services import upgrades
from ccp.services.backups import backup_of
from tests.tenants import CANARY

HOOK = """#!/bin/sh
echo "$CCP_HOOK from=$CCP_FROM_TAG to=$CCP_TO_TAG id=$CCP_UPGRADE_ID" >> hooks.log
if [ -f fail-$CCP_HOOK ]; then echo "{name} failed; password is $(grep -m1 CANARY .env || echo none)"; exit 7; fi
{body}
"""
HOOKS = {
    "pre-upgrade.sh": "echo checked",
    "post-upgrade.sh": "echo migrated",
    "backup.sh": 'cp data/records.txt "$CCP_BACKUP_DIR/records.txt" && echo saved',
    "restore.sh": 'cp "$CCP_BACKUP_DIR/records.txt" data/records.txt && echo put back',
}
MANIFEST = """
[hooks]
pre_upgrade = { run = "hooks/pre-upgrade.sh", deadline_s = 30 }
post_upgrade = { run = "hooks/post-upgrade.sh", deadline_s = 30 }
[backup]
run = "hooks/backup.sh"
restore = "hooks/restore.sh"
keep = 2
deadline_s = 60
"""


@pytest.fixture
def hooked(app, tmp_path, tenant_factory):
    """A provisioned tenant at v1 whose set (default + hooks) declares every hook and a backup; data/records.txt
    holds one record."""
    sets = tmp_path / "sets"
    shutil.copytree(BUNDLED_DIR / "default", sets / "default")
    (sets / "default" / "hooks").mkdir()
    for name, body in HOOKS.items():
        (sets / "default" / "hooks" / name).write_text(HOOK.format(name=name, body=body))
    with (sets / "default" / "set.toml").open("a") as manifest:
        manifest.write(MANIFEST)
    app.config["CCP"].template_sets_dir = str(sets)
    inst = tenant_factory()
    data = Path(inst.install_dir) / "data"
    data.mkdir()
    (data / "records.txt").write_text("record written at v1\n")
    return inst


def _tree(inst) -> dict[str, bytes]:
    root = Path(inst.install_dir)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".ccp" not in p.relative_to(root).parts and p.name not in ("hooks.log", ".dry-run-runtime.json")}


def _log(inst) -> list[str]:
    path = Path(inst.install_dir) / "hooks.log"
    return path.read_text().splitlines() if path.exists() else []


def _steps(upgrade) -> dict[str, str]:
    return {s.name: s.status for s in upgrade.steps}


def _why(upgrade) -> str:
    return f"{upgrade.status}: {upgrade.error} " + repr([(s.name, s.status, s.output_tail) for s in upgrade.steps])


def test_hooks_and_backup_run_in_order_and_the_backup_is_recorded(app, db, hooked, run_worker):
    upgrade = upgrades.start_release(hooked, "v2", actor="user:ann")
    # the job may take as long as the hooks' and the backup's deadlines on top of the usual (30 + 30 + 60 + 60 s)
    assert Job.fetch(upgrade.job_id, connection=get_redis()).timeout == app.config["CCP"].job_timeout_s + 180
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded", _why(upgrade)
    assert [s.name for s in upgrade.steps] == list(upgrades.RELEASE_STEPS)
    assert all(status in ("succeeded", "skipped") for status in _steps(upgrade).values())
    assert _steps(upgrade)["backup"] == _steps(upgrade)["pre_upgrade"] == _steps(upgrade)["post_upgrade"] == \
        "succeeded"
    assert _log(hooked) == [f"pre_upgrade from=v1 to=v2 id={upgrade.id}", f"backup from=v1 to=v2 id={upgrade.id}",
                            f"post_upgrade from=v1 to=v2 id={upgrade.id}"]
    assert upgrade.backup_id and upgrade.backup_id.startswith(f"{upgrade.id}-")
    info = backup_of(upgrades.upgrade_status(upgrade))
    size = len("record written at v1\n")
    assert (info.id, info.size_bytes, info.size_text) == (upgrade.backup_id, size, f"{size} bytes")
    assert info.duration_s is not None and info.duration_s >= 0
    backup_step = next(s for s in upgrade.steps if s.name == "backup")
    assert f"({size} bytes) in " in backup_step.output_tail and "saved" in backup_step.output_tail


def test_failing_pre_upgrade_hook_leaves_the_tenant_untouched(app, db, hooked, run_worker):
    (Path(hooked.install_dir) / "fail-pre_upgrade").write_text("")
    before = _tree(hooked)
    upgrade = upgrades.start_release(hooked, "v2", actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "failed", _why(upgrade)
    steps = _steps(upgrade)
    assert steps["pre_upgrade"] == "failed"
    assert all(steps[name] == "skipped" for name in ("backup", "write", "env_patch", "pull", "up", "verify"))
    assert "pre_upgrade hook failed (exit code 7); nothing written" in upgrade.error
    out = next(s.output_tail for s in upgrade.steps if s.name == "pre_upgrade")
    assert "pre-upgrade.sh failed; password is" in out and CANARY not in out and "********" in out
    assert _tree(hooked) == before and upgrade.backup_id is None and upgrade.snapshot_id is None
    assert db.session.get(type(hooked), hooked.id).image_tag == "v1"


def test_failing_backup_stops_the_release_before_anything_is_written(app, db, hooked, run_worker):
    (Path(hooked.install_dir) / "fail-backup").write_text("")
    before = _tree(hooked)
    upgrade = upgrades.start_release(hooked, "v2", actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "failed", _why(upgrade)
    assert _steps(upgrade)["pre_upgrade"] == "succeeded" and _steps(upgrade)["backup"] == "failed"
    assert all(_steps(upgrade)[n] == "skipped" for n in ("write", "env_patch", "pull", "up", "verify", "post_upgrade"))
    assert "backup failed (exit code 7); nothing written" in upgrade.error
    assert _tree(hooked) == before and upgrade.backup_id is None
    assert not any((Path(hooked.install_dir) / ".ccp" / "backups").iterdir()), "a failed backup left its folder"


def test_failing_post_upgrade_rolls_back_files_not_data_then_a_confirmed_restore_does(app, db, hooked, run_worker):
    (Path(hooked.install_dir) / "fail-post_upgrade").write_text("")
    before = _tree(hooked)
    upgrade = upgrades.start_release(hooked, "v2", actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "rolled_back", _why(upgrade)
    assert _steps(upgrade)["post_upgrade"] == "failed" and _steps(upgrade)["restore"] == "succeeded"
    assert _tree(hooked) == before, "the rollback did not put the files back"
    assert upgrade.backup_id

    # the "migration" broke the data; the automatic rollback does not touch it
    records = Path(hooked.install_dir) / "data" / "records.txt"
    records.write_text("garbage after a failed migration\n")
    with pytest.raises(upgrades.ConfirmationRequired, match="overwrites the current data"):
        upgrades.start_restore(hooked, upgrade, actor="user:ann")
    assert db.session.query(Upgrade).filter_by(kind="restore").count() == 0

    restore = upgrades.start_restore(hooked, upgrade, actor="user:ann", confirm=True)
    assert (restore.kind, restore.backup_id, restore.to_tag) == ("restore", upgrade.backup_id, "v1")
    run_worker()
    db.session.refresh(restore)
    assert restore.status == "succeeded", _why(restore)
    assert [s.name for s in restore.steps] == ["restore_data", "up", "verify"]
    assert records.read_text() == "record written at v1\n"
    out = next(s.output_tail for s in restore.steps if s.name == "restore_data")
    assert f"restored backup {upgrade.backup_id} in " in out and "put back" in out
    assert _log(hooked)[-1] == f"restore from=v1 to=v1 id={restore.id}"
    assert backup_of(upgrades.upgrade_status(restore)) is None  # it restores one, it took none
    started = db.session.query(AuditEvent).filter_by(action="upgrade.start.restore").one()
    assert started.actor == "user:ann"


def test_restore_is_refused_for_an_upgrade_without_a_backup(app, db, tenant, run_worker):
    upgrade = upgrades.start_release(tenant, "v2", actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "succeeded" and upgrade.backup_id is None
    assert _steps(upgrade)["backup"] == "skipped"
    assert next(s.output_tail for s in upgrade.steps if s.name == "backup") == \
        "the template set declares no [backup]"
    with pytest.raises(upgrades.NoBackup, match="took no data backup"):
        upgrades.start_restore(tenant, upgrade, actor="user:ann", confirm=True)
    refused = db.session.query(AuditEvent).filter_by(action="upgrade.start.restore").one()
    assert (refused.actor, refused.result) == ("user:ann", "refused:no_backup")


def test_an_agent_without_the_capabilities_is_too_old_for_a_set_with_hooks(app, db, hooked, run_worker,
                                                                           monkeypatch):
    import ccp.drivers.local as local
    from ccp.protocol import BACKUPS_CAPABILITY, HOOKS_CAPABILITY

    real = local.host_capabilities  # an agent from before issue #16 reports neither hooks.run nor backups
    monkeypatch.setattr(local, "host_capabilities", lambda dry_run: [
        c for c in real(dry_run) if c not in (HOOKS_CAPABILITY, BACKUPS_CAPABILITY)])
    before = _tree(hooked)
    upgrade = upgrades.start_release(hooked, "v2", actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    assert upgrade.status == "failed" and "lacks hooks.run, backups" in upgrade.error, _why(upgrade)
    assert _steps(upgrade)["check_plan"] == "failed"
    assert _tree(hooked) == before and _log(hooked) == []


def test_restore_fails_clearly_when_the_set_dropped_its_backup_meanwhile(app, db, hooked, run_worker):
    upgrade = upgrades.start_release(hooked, "v2", actor="user:ann")
    run_worker()
    db.session.refresh(upgrade)
    restore = upgrades.start_restore(hooked, upgrade, actor="user:ann", confirm=True)
    manifest = Path(app.config["CCP"].template_sets_dir) / "default" / "set.toml"
    manifest.write_text(manifest.read_text().split("\n[backup]")[0] + "\n")
    run_worker()
    db.session.refresh(restore)
    assert restore.status == "failed", _why(restore)
    assert "cannot render the restore hook: template set default" in restore.error
    assert "declares no [backup]" in restore.error and _steps(restore)["up"] == "skipped"
