"""TenantHost: diff, all-or-nothing writes, expectations, snapshots/restore, env patch, fence and lock."""
import errno
import os
import stat
import threading

import pytest

from ccp.hostops import atomic
from ccp.hostops.errors import (
    BadRequest,
    Busy,
    ExpectationFailed,
    FenceRejected,
    NotFound,
    PathRefused,
    WriteFailed,
)
from ccp.hostops.locking import tenant_lock
from ccp.hostops.tenant import sha256_hex
from tests.hostops.conftest import COMPOSE, ENV


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_diff_statuses_and_hashes(host):
    new_compose = COMPOSE.replace("latest", "stable")
    out = host.diff_files({"docker-compose.yml": new_compose, "nginx/site.conf": "server { listen 80; }\n",
                           "nginx/new.conf": "x\n"})["files"]
    assert out["docker-compose.yml"]["status"] == "modified"
    assert out["docker-compose.yml"]["old_sha256"] == sha256_hex(COMPOSE.encode())
    assert out["docker-compose.yml"]["added"] == 1 and out["docker-compose.yml"]["removed"] == 1
    assert out["nginx/site.conf"] == {**out["nginx/site.conf"], "status": "unchanged", "diff": "", "added": 0}
    assert out["nginx/new.conf"]["status"] == "created" and out["nginx/new.conf"]["old_sha256"] is None


def test_env_diff_is_masked(host):
    new_env = ENV.replace("supersecretvalue", "othersecretvalue").replace("1.0.0", "2.0.0")
    diff = host.diff_files({".env": new_env})["files"][".env"]
    assert diff["status"] == "modified" and diff["removed"] == 2
    for secret in ("supersecretvalue", "othersecretvalue"):
        assert secret not in diff["diff"]
    assert "-DB_PASSWORD=********" in diff["diff"]
    assert "-IMAGE_TAG=1.0.0\n" in diff["diff"] and "+IMAGE_TAG=2.0.0\n" in diff["diff"]  # not a secret: shown


def test_env_diff_masks_what_the_rule_hides_and_all_of_an_unparsable_file(host):
    new_env = ENV + "SITE_NAME=shop\nDB_URL=postgres://app:pw-in-url@db/app\nCOPY=supersecretvalue\n"
    text = host.diff_files({".env": new_env}, env_secret_keys=["SITE_NAME"])["files"][".env"]["diff"]
    for hidden in ("shop", "pw-in-url", "supersecretvalue"):
        assert hidden not in text
    assert "+SITE_NAME=********" in text and "+COPY=********" in text
    broken = host.diff_files({".env": "IMAGE_TAG=2.0.0\nA='unterminated\n"})["files"][".env"]["diff"]
    assert "2.0.0" not in broken and "1.0.0" not in broken


def test_env_diff_carries_a_masked_key_table(host):
    new_env = ENV.replace("supersecretvalue", "othersecretvalue").replace("1.0.0", "2.0.0") + "SITE_NAME=shop\n"
    entry = host.diff_files({".env": new_env}, env_secret_keys=["SITE_NAME"])["files"][".env"]
    assert entry["env"] == [
        {"key": "IMAGE_TAG", "change": "changed", "secret": False, "old": "1.0.0", "new": "2.0.0"},
        {"key": "DB_PASSWORD", "change": "changed", "secret": True, "old": None, "new": None},
        {"key": "SITE_NAME", "change": "added", "secret": True, "old": None, "new": None},  # the set lists it
    ]
    assert "env" not in host.diff_files({"docker-compose.yml": COMPOSE})["files"]["docker-compose.yml"]


def test_env_table_of_an_unparsable_env_is_none(host):
    assert host.diff_files({".env": "A='unterminated\n"})["files"][".env"]["env"] is None


def test_bad_env_secret_keys_are_refused(host):
    for bad in ("DB_PASSWORD", ["ok", 5], ["has space"], ["X"] * 501):
        with pytest.raises(BadRequest):
            host.diff_files({".env": ENV}, env_secret_keys=bad)


def test_env_keys_gives_only_asked_plain_values(host):
    answer = host.env_keys(["IMAGE_TAG", "DB_PASSWORD", "ABSENT"])
    assert answer == {"keys": ["IMAGE_TAG", "DB_PASSWORD"], "exists": True, "values": {"IMAGE_TAG": "1.0.0"}}
    with pytest.raises(BadRequest):
        host.env_keys(["IMAGE TAG"])


def test_write_set_snapshot_and_restore(host, install_dir):
    before = _tree(install_dir)
    res = host.write_files({"docker-compose.yml": {"content": "v2\n", "expect_sha256": sha256_hex(COMPOSE.encode())},
                            "nginx/extra/new.conf": {"content": "new\n", "expect_sha256": None}}, fence=5)
    assert res["written"] == ["docker-compose.yml", "nginx/extra/new.conf"]
    assert res["created"] == ["nginx/extra/new.conf"]
    assert (install_dir / "docker-compose.yml").read_text() == "v2\n"
    snap_dir = host.snapshots.root / res["snapshot_id"]
    assert stat.S_IMODE(os.stat(snap_dir / "files" / "0000").st_mode) == 0o600
    restored = host.restore_snapshot(res["snapshot_id"])
    assert restored == {"restored": ["docker-compose.yml"], "removed": ["nginx/extra/new.conf"]}
    assert _tree(install_dir) == before


def test_expectation_failure_writes_nothing(host, install_dir):
    before = _tree(install_dir)
    with pytest.raises(ExpectationFailed) as exc:
        host.write_files({"docker-compose.yml": {"content": "v2\n", "expect_sha256": "0" * 64},
                          "nginx/site.conf": {"content": "y\n", "expect_sha256": None}}, fence=1)
    assert exc.value.status == 409 and exc.value.details["paths"] == ["docker-compose.yml"]
    assert _tree(install_dir) == before and host.snapshots.list_ids() == []


def test_injected_enospc_on_third_file_keeps_originals(host, install_dir, monkeypatch):
    before = _tree(install_dir)
    real, staged = atomic.write_fully, []

    def failing(fd, data):
        # journal and snapshot copies go through write_fully too; fail on the third file of the set
        if bytes(data).startswith(b"new "):
            staged.append(data)
            if len(staged) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(atomic, "write_fully", failing)
    files = {f"f{i}.conf": {"content": f"new {i}\n", "expect_sha256": None} for i in range(1, 6)}
    files["docker-compose.yml"] = {"content": "v2\n", "expect_sha256": None}
    with pytest.raises(WriteFailed, match="ENOSPC"):
        host.write_files(files, fence=1)
    assert len(staged) == 3 and _tree(install_dir) == before
    assert not list(install_dir.rglob(".*.ccp-*")) and not (host.state_dir / "journal.json").exists()


def test_mode_and_owner_kept(host, install_dir):
    host.write_files({".env": {"content": "A=1\n", "expect_sha256": None}}, fence=1)
    assert stat.S_IMODE((install_dir / ".env").stat().st_mode) == 0o640


def test_fence_rejects_older_token_and_persists(host, install_dir, tmp_path):
    host.write_files({"a.txt": {"content": "1", "expect_sha256": None}}, fence=10)
    host.write_files({"a.txt": {"content": "2", "expect_sha256": None}}, fence=10)  # same upgrade, again: ok
    with pytest.raises(FenceRejected):
        host.env_patch({"IMAGE_TAG": "9"}, fence=9)
    from ccp.hostops.tenant import TenantHost
    again = TenantHost(install_dir, "acme", state_dir=tmp_path / "state")
    with pytest.raises(FenceRejected):
        again.write_files({"a.txt": {"content": "3", "expect_sha256": None}}, fence=3)
    assert (install_dir / "a.txt").read_text() == "2"
    with pytest.raises(BadRequest):
        host.write_files({"a.txt": {"content": "3", "expect_sha256": None}}, fence="11")


def test_busy_when_another_mutation_holds_the_lock(host, install_dir):
    host.lock_wait_s = 0.1
    held, release = threading.Event(), threading.Event()

    def holder():
        with tenant_lock(host.state_dir):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(Busy):
            host.write_files({"a.txt": {"content": "1", "expect_sha256": None}}, fence=1)
    finally:
        release.set()
        t.join()
    assert not (install_dir / "a.txt").exists()


def test_env_patch_in_place_and_shared_snapshot_restore(host, install_dir):
    w = host.write_files({"docker-compose.yml": {"content": "v2\n", "expect_sha256": None}}, fence=2)
    res = host.env_patch({"IMAGE_TAG": "2.0.0", "NEW_FLAG": "on"}, fence=2, snapshot_id=w["snapshot_id"])
    assert res == {"snapshot_id": w["snapshot_id"], "changed": ["IMAGE_TAG"], "appended": ["NEW_FLAG"]}
    assert (install_dir / ".env").read_text() == ENV.replace("1.0.0", "2.0.0") + "NEW_FLAG=on\n"
    assert host.env_keys() == {"keys": ["IMAGE_TAG", "DB_PASSWORD", "NEW_FLAG"], "exists": True, "values": {}}
    host.restore_snapshot(w["snapshot_id"])
    assert (install_dir / ".env").read_text() == ENV
    assert (install_dir / "docker-compose.yml").read_text() == COMPOSE


def test_env_patch_refusal_names_key_not_value(host, install_dir):
    with pytest.raises(BadRequest) as exc:
        host.env_patch({"DB_PASSWORD": "it's $ecret"}, fence=1)
    assert "DB_PASSWORD" in exc.value.message and "ecret" not in exc.value.message
    assert (install_dir / ".env").read_text() == ENV


def test_env_keys_without_env_file(host, install_dir):
    (install_dir / ".env").unlink()
    assert host.env_keys() == {"keys": [], "exists": False, "values": {}}


def test_snapshots_pruned_to_keep(host):
    ids = [host.write_files({"a.txt": {"content": str(i), "expect_sha256": None}}, fence=1)["snapshot_id"]
           for i in range(5)]
    assert host.snapshots.list_ids() == ids[-3:]
    with pytest.raises(NotFound):
        host.restore_snapshot(ids[0])
    with pytest.raises(NotFound):
        host.restore_snapshot("../../etc")


def test_paths_refused_before_any_io(host, install_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (install_dir / "escape").symlink_to(outside)
    for bad in ("../x", "/etc/passwd", "escape/x", ".ccp/fence.json", "a/../../x", "nul\x00"):
        with pytest.raises(PathRefused):
            host.write_files({bad: {"content": "x", "expect_sha256": None}}, fence=1)
    assert list(outside.iterdir()) == [] and host.snapshots.list_ids() == []
