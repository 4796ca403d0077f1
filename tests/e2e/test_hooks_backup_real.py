"""Hooks and the data backup on a REAL Docker engine (issue #16): CCP service layer -> RQ worker -> real agent (signed
HTTP) -> `sh` hooks that use `docker compose exec` -> a stateful tenant.

The tenant is rendered from tests/e2e/sets/e2e-store: the busybox test image with its data in a named volume (a
file-backed store, /data/records.txt), a pre-upgrade hook that refuses while the marker file `upgrade-blocked`
exists, a post-upgrade "migration" that breaks the data and fails while `migration-breaks` exists, and a backup that
tars the volume out of the running container (keep = 1). Pinned to SQLite: the database side is the same as the
service tests' (tests/upgrades/test_hooks_backup.py, both databases).
"""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import current_app

from ccp.drivers import driver_for
from ccp.models import Instance, Upgrade
from ccp.rendering.render import render_instance
from ccp.rendering.sets import load_template_set
from ccp.services import upgrades
from ccp.services.backups import backup_of
from ccp.services.instances import create_instance
from tests.e2e import images
from tests.e2e import upgrade_helpers as uh

SET_NAME = "e2e-store"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
RECORD = "record 1: written at v1 before any upgrade"


class StoreTenant(uh.RealTenant):
    def store(self, *command: str) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", "store", *command, timeout=30)

    def records(self) -> str:
        proc = self.store("cat", "/data/records.txt")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture
def store_tenant(app, tmp_path):
    """A started e2e-store tenant at v1 with one record in its volume, its agent, and its CCP instance."""
    made: list[StoreTenant] = []

    def make() -> tuple[StoreTenant, Instance]:
        hexid = uuid.uuid4().hex[:8]
        slug, project = f"store-{hexid}", f"ccpe2e-{hexid}"
        install_dir = tmp_path / "hosts" / slug
        install_dir.mkdir(parents=True)
        port = uh.free_port()
        vars_ = {"WEB_PORT": str(port), "NETWORK": uh.network_mode()}
        secret = f"s3cr3t-{uuid.uuid4().hex[:16]}"
        row = SimpleNamespace(slug=slug, name=f"Store {slug}", domain=f"{slug}.example.test", compose_project=project,
                              is_registered=False, image_tag="v1", template_set=SET_NAME, vars=vars_, health_urls=[])
        uh.write_tree(install_dir, render_instance(row, "v1", secrets={"APP_SECRET": secret},
                                                   extra_dirs=(uh.SETS_DIR,)).files)
        agent = uh.RealAgent(tmp_path / "agents" / slug, slug, install_dir, project)
        t = StoreTenant(slug=slug, project=project, install_dir=install_dir, port=port, agent=agent, secret=secret,
                        vars=vars_)
        made.append(t)
        data = {**uh.instance_data(t), "template_set": SET_NAME, "secrets": {"APP_SECRET": secret}}
        inst = create_instance(data, actor="test")
        t.instance_id = inst.id
        t.up()
        uh.wait_healthy(install_dir, project)
        uh.wait_page(t.url, "v1")
        assert t.store("sh", "-c", f"echo '{RECORD}' >> /data/records.txt").returncode == 0
        return t, inst

    yield make
    for t in made:
        t.agent.stop()
    images.down_all(made, "store_tenant")


def _backups_on_host(inst) -> list[str]:
    """The ids of the backups the tenant's agent keeps (GET /v1/instances/<slug>/backups)."""
    return [b["id"] for b in driver_for(inst, current_app.config["CCP"]).list_backups()]


def _reload(db, upgrade: Upgrade) -> Upgrade:
    db.session.expire_all()
    return db.session.get(Upgrade, upgrade.id)


def _steps(upgrade: Upgrade) -> dict[str, str]:
    return {s.name: s.status for s in upgrade.steps}


def _out(upgrade: Upgrade, name: str) -> str:
    return next(s.output_tail or "" for s in upgrade.steps if s.name == name)


def _why(upgrade: Upgrade) -> str:
    return f"{upgrade.status}: {upgrade.error}\n" + "\n".join(
        f"  {s.name}: {s.status} {(s.output_tail or '')[-400:]!r}" for s in upgrade.steps)


@SQLITE_ONLY
def test_failing_pre_upgrade_hook_leaves_the_tenant_untouched(app, db, store_tenant, run_worker):
    t, inst = store_tenant()
    (t.install_dir / "upgrade-blocked").write_text("until the audit is done\n")
    files, container = t.tree(), t.container("store")
    started_at = uh.inspect(container)["State"]["StartedAt"]

    upgrade = upgrades.start_release(inst, "v2", actor="user:e2e")
    run_worker()
    upgrade = _reload(db, upgrade)
    assert upgrade.status == "failed", _why(upgrade)
    steps = _steps(upgrade)
    assert steps["pre_upgrade"] == "failed"
    assert all(steps[n] == "skipped" for n in ("backup", "write", "env_patch", "pull", "up", "verify",
                                                "post_upgrade"))
    out = _out(upgrade, "pre_upgrade")
    assert "pre-upgrade v1 -> v2" in out and "blocked by upgrade-blocked" in out
    assert "APP_SECRET=********" in out and t.secret not in out and t.secret not in (upgrade.error or "")

    # files, .env and the running container exactly as before; the data too
    assert t.tree() == files
    assert t.container("store") == container and uh.inspect(container)["State"]["StartedAt"] == started_at
    assert uh.inspect(container)["State"]["Running"] and t.image("store").endswith(":v1")
    assert uh.page_version(t.url) == "v1" and t.records() == RECORD + "\n"
    assert upgrade.backup_id is None and db.session.get(Instance, inst.id).image_tag == "v1"


@SQLITE_ONLY
def test_backup_rollback_then_operator_restore_brings_the_record_back(app, db, store_tenant, run_worker):
    t, inst = store_tenant()
    (t.install_dir / "migration-breaks").write_text("")
    v1_files = t.tree()

    upgrade = upgrades.start_release(inst, "v2", actor="user:e2e")
    run_worker()
    upgrade = _reload(db, upgrade)
    # the backup ran before anything was written; the migration broke the data and failed: rolled back to v1
    assert upgrade.status == "rolled_back", _why(upgrade)
    steps = _steps(upgrade)
    assert steps["backup"] == steps["write"] == steps["up"] == steps["verify"] == "succeeded"
    assert steps["post_upgrade"] == "failed" and steps["rollback_verify"] == "succeeded"
    assert "migration to v2 failed halfway" in _out(upgrade, "post_upgrade")
    backup = backup_of(upgrades.upgrade_status(upgrade))
    assert backup is not None and backup.id == upgrade.backup_id and backup.size_bytes >= 1024  # a tar: >= 1 block
    assert f"({backup.size_bytes} bytes) in " in _out(upgrade, "backup") and backup.duration_s >= 0
    assert t.tree() == v1_files and t.image("store").endswith(":v1") and uh.page_version(t.url) == "v1"
    assert "half-migrated" in t.records(), "the automatic rollback must not touch data"

    # the operator restores the backup: the record written before the upgrade is back
    with pytest.raises(upgrades.ConfirmationRequired):
        upgrades.start_restore(inst, upgrade, actor="user:e2e")
    restore = upgrades.start_restore(inst, upgrade, actor="user:e2e", confirm=True)
    run_worker()
    restore = _reload(db, restore)
    assert restore.status == "succeeded", _why(restore)
    assert t.records() == RECORD + "\n"
    assert f"restored backup {upgrade.backup_id} in " in _out(restore, "restore_data")
    assert uh.page_version(t.url) == "v1"

    # keep = 1: the next upgrade's backup replaces it, and the old one can no longer be restored
    (t.install_dir / "migration-breaks").unlink()
    again = upgrades.start_release(inst, "v2", actor="user:e2e")
    run_worker()
    again = _reload(db, again)
    assert again.status == "succeeded", _why(again)
    assert "the host keeps the last 1" in _out(again, "backup")
    assert _backups_on_host(inst) == [again.backup_id]
    gone = upgrades.start_restore(db.session.get(Instance, inst.id), upgrade, actor="user:e2e", confirm=True)
    run_worker()
    gone = _reload(db, gone)
    assert gone.status == "failed" and "not found" in (gone.error or ""), _why(gone)
    assert t.records() == RECORD + "\n" and uh.page_version(t.url) == "v2"


def test_the_set_declares_its_hooks_and_backup():
    tset = load_template_set(SET_NAME, (uh.SETS_DIR,))
    assert sorted(tset.hooks) == ["post_upgrade", "pre_upgrade"] and tset.backup.keep == 1
    assert tset.hooks["post_upgrade"].output == "hooks/post-upgrade.sh"
    assert Path(uh.SETS_DIR / SET_NAME / tset.hooks["post_upgrade"].source).is_file()
