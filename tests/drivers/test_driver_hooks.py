"""Hooks and backups through both drivers (in-process hostops and signed HTTP to a real agent): the same answers,
the same errors (issue #16)."""

from __future__ import annotations

import pytest

from ccp.drivers import AgentRejected
from ccp.protocol import BACKUPS_CAPABILITY, HOOKS_CAPABILITY
from tests.drivers.test_drivers import host  # noqa: F401 - the fixture: (driver, install_dir), local and remote

BACKUP = 'cp .env "$CCP_BACKUP_DIR/env.copy" && echo "saved for $CCP_TO_TAG"\n'
RESTORE = 'cp "$CCP_BACKUP_DIR/env.copy" restored.env\n'


def test_capabilities_name_hooks_and_backups(host):  # noqa: F811
    driver, _ = host
    assert {HOOKS_CAPABILITY, BACKUPS_CAPABILITY} <= set(driver.health()["capabilities"])


def test_hook_answer_is_the_same_on_both(host):  # noqa: F811
    driver, install = host
    res = driver.run_hook("pre_upgrade", 'echo "$CCP_HOOK $CCP_FROM_TAG>$CCP_TO_TAG $(grep DB_ .env)"; exit 2\n',
                          10, 3, from_tag="v1", to_tag="v2")
    assert (res["ok"], res["exit_code"], res["timed_out"]) == (False, 2, False)
    assert "pre_upgrade v1>v2 DB_PASSWORD=********" in res["output_tail"] and "hunter2" not in res["output_tail"]


def test_backup_list_restore_and_errors(host):  # noqa: F811
    driver, install = host
    made = driver.create_backup(BACKUP, 10, 5, keep=2, from_tag="v1", to_tag="v2")
    assert made["ok"] and made["backup_id"].startswith("5-") and made["size_bytes"] == len((install / ".env").read_text())
    assert "saved for v2" in made["output_tail"]
    assert [b["id"] for b in driver.list_backups()] == [made["backup_id"]]
    restored = driver.restore_backup(made["backup_id"], RESTORE, 10, 6)
    assert restored["ok"] and (install / "restored.env").read_text() == (install / ".env").read_text()
    with pytest.raises(AgentRejected) as err:
        driver.restore_backup("5-20000101T000000Z", RESTORE, 10, 7)
    assert err.value.status == 404 and err.value.code == "not_found"
    with pytest.raises(AgentRejected) as err:
        driver.run_hook("pre_upgrade", "true\n", 10, 4)  # older than the newest fence seen (6)
    assert err.value.status == 409 and err.value.code == "fence_rejected"
    with pytest.raises(AgentRejected) as err:
        driver.create_backup(BACKUP, 10, 8, keep=0)
    assert err.value.status == 400 and "keep" in err.value.message
