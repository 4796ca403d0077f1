"""Template-set hooks and data backups on the host (ccp.hostops.hooks through TenantHost): what a hook sees, masking of
.env secrets in its output, the deadline kill, fences, the backup folder's life (keep N, failures leave nothing)."""
import os
import stat
import time

import pytest

from ccp.hostops.errors import BadRequest, FenceRejected, NotFound

SECRET = "supersecretvalue"  # DB_PASSWORD in the conftest's .env


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_hook_runs_in_the_install_dir_with_its_environment(host, install_dir):
    script = ('echo "hook=$CCP_HOOK from=$CCP_FROM_TAG to=$CCP_TO_TAG id=$CCP_UPGRADE_ID '
              'project=$COMPOSE_PROJECT_NAME pwd=$(pwd) backup=${CCP_BACKUP_DIR:-none}"\n'
              'env | grep -c CCP_AGENT_ || true\n')
    os.environ["CCP_AGENT_KEYS"] = "k:must-not-reach-hooks"
    try:
        res = host.run_hook("pre_upgrade", script, 10, 7, "v1", "v2")
    finally:
        del os.environ["CCP_AGENT_KEYS"]
    assert res["ok"] and res["exit_code"] == 0
    assert (f"hook=pre_upgrade from=v1 to=v2 id=7 project=acme pwd={install_dir.resolve()} backup=none"
            in res["output_tail"])
    assert res["output_tail"].rstrip().endswith("0"), "the agent's own settings reached the hook"
    assert not any((host.state_dir / "hooks").iterdir()), "the hook's script file was left behind"


def test_hook_output_masks_env_secrets_and_a_failure_is_reported(host):
    res = host.run_hook("post_upgrade", f'echo "connecting with {SECRET}"; exit 4\n', 10, 1)
    assert not res["ok"] and res["exit_code"] == 4
    assert SECRET not in res["output_tail"] and "connecting with ********" in res["output_tail"]


def test_deadline_kills_the_hook_and_its_children(host, tmp_path):
    marker = tmp_path / "child-alive"
    script = f"(sleep 30; touch {marker}) &\nsleep 30\n"
    started = time.monotonic()
    res = host.run_hook("pre_upgrade", script, 0.5, 1)
    assert res["timed_out"] and not res["ok"] and time.monotonic() - started < 10
    time.sleep(0.3)
    assert not marker.exists()


@pytest.mark.parametrize("args, message", [
    (("rm_rf", "echo hi", 10, 1), "hook must be one of"),
    (("pre_upgrade", "", 10, 1), "content"),
    (("pre_upgrade", 42, 10, 1), "content"),
    (("pre_upgrade", "echo\x00", 10, 1), "NUL"),
    (("pre_upgrade", "x" * (64 * 1024 + 1), 10, 1), "larger than"),
    (("pre_upgrade", "echo hi", 0, 1), "deadline_s"),
    (("pre_upgrade", "echo hi", 99999, 1), "deadline_s"),
    (("pre_upgrade", "echo hi", 10, "1"), "fence"),
    (("pre_upgrade", "echo hi", 10, 1, "v1;rm -rf /", "v2"), "from_tag"),
])
def test_bad_input_is_refused_and_nothing_runs(host, install_dir, tmp_path, args, message):
    before = _tree(install_dir)
    with pytest.raises(BadRequest, match=message):
        host.run_hook(*args)
    assert _tree(install_dir) == before
    assert not (host.state_dir / "hooks").exists()


def test_an_older_fence_is_refused_before_the_hook_runs(host, tmp_path):
    marker = tmp_path / "ran"
    host.run_hook("pre_upgrade", "true\n", 10, 5)
    with pytest.raises(FenceRejected):
        host.run_hook("pre_upgrade", f"touch {marker}\n", 10, 4)
    assert not marker.exists()


BACKUP = 'mkdir -p "$CCP_BACKUP_DIR/db" && printf "%s" "$CCP_UPGRADE_ID" > "$CCP_BACKUP_DIR/db/dump.sql"\n'
RESTORE = 'cat "$CCP_BACKUP_DIR/db/dump.sql" > restored.txt\n'


def test_backup_keeps_the_newest_n_and_restore_reads_it(host, install_dir):
    ids = []
    for fence in (1, 2, 3, 4):
        res = host.create_backup(BACKUP, 10, fence, keep=2, from_tag="v1", to_tag="v2")
        assert res["ok"] and res["size_bytes"] == 1 and res["backup_id"].startswith(f"{fence}-")
        ids.append(res["backup_id"])
        time.sleep(0.01)
    listed = host.list_backups()["backups"]
    assert [b["id"] for b in listed] == ids[-2:], "only the newest two are kept"
    assert all(b["size_bytes"] == 1 and b["duration_s"] >= 0 and b["created"].endswith("Z") for b in listed)
    folder = host.state_dir / "backups"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ids[-2:]

    res = host.restore_backup(ids[-2], RESTORE, 10, 5)
    assert res["ok"] and (install_dir / "restored.txt").read_text() == "3"
    with pytest.raises(NotFound):
        host.restore_backup(ids[0], RESTORE, 10, 6)  # pruned
    for bad in ("../../etc", "1-2", "", None, "1-20261130T000000Z/../x"):
        with pytest.raises(NotFound):
            host.restore_backup(bad, RESTORE, 10, 6)


def test_a_failed_or_empty_backup_keeps_no_folder(host):
    failed = host.create_backup('echo partial > "$CCP_BACKUP_DIR/x"; exit 2\n', 10, 1, keep=3)
    assert not failed["ok"] and failed["backup_id"] is None and failed["exit_code"] == 2
    empty = host.create_backup("echo forgot to write\n", 10, 2, keep=3)
    assert not empty["ok"] and empty["backup_id"] is None and "wrote nothing" in empty["output_tail"]
    assert host.list_backups() == {"backups": []}
    assert list((host.state_dir / "backups").iterdir()) == []


def test_backup_refuses_bad_keep_and_older_fences(host):
    for keep in (0, 51, "3", True):
        with pytest.raises(BadRequest, match="keep"):
            host.create_backup(BACKUP, 10, 1, keep=keep)
    host.create_backup(BACKUP, 10, 9, keep=3)
    with pytest.raises(FenceRejected):
        host.create_backup(BACKUP, 10, 8, keep=3)
    assert len(host.list_backups()["backups"]) == 1
