"""The agent's hook and backup endpoints on a real agent (127.0.0.1): signed calls run the hook CCP sent; unsigned,
stale-fenced or malformed ones get a clear 4xx and run nothing; a backup is listed, restored, and pruned to `keep`."""
import json

import pytest
import requests

from ccp.protocol import BACKUPS_CAPABILITY, HOOKS_CAPABILITY
from ccp.protocol.signing import sign_request
from tests.agent.conftest import KEY, KEY_ID

HOOK = "/v1/instances/acme/hooks/pre_upgrade/run"
BACKUPS = "/v1/instances/acme/backups"


def _marker_script(world, name="ran"):
    return f"touch {world / name}\necho done\n"


def test_capabilities_name_hooks_and_backups(client):
    status, body = client.request("GET", "/v1/health")
    assert status == 200 and {HOOKS_CAPABILITY, BACKUPS_CAPABILITY} <= set(body["capabilities"])


def test_unsigned_or_tampered_hook_calls_are_401_and_run_nothing(agent, world):
    body = json.dumps({"content": _marker_script(world), "deadline_s": 10, "fence": 1}).encode()
    good = sign_request(KEY_ID, KEY, "POST", HOOK, body)
    for headers in ({}, {**good, "X-CCP-Signature": "0" * 64},
                    sign_request(KEY_ID, KEY, "POST", "/v1/instances/acme/hooks/post_upgrade/run", body)):
        resp = requests.post(agent.url + HOOK, data=body, headers={**headers, "Content-Type": "application/json"},
                             timeout=10)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    assert not (world / "ran").exists()


def test_hook_runs_and_answers_exit_code_masked_tail_and_duration(client, world):
    status, res = client.request("POST", "/v1/instances/acme/hooks/post_upgrade/run", json={
        "content": 'echo "to $CCP_TO_TAG with $(grep DB_PASSWORD .env)"; exit 3\n', "deadline_s": 10, "fence": 2,
        "from_tag": "1.0.0", "to_tag": "1.1.0"})
    assert status == 200 and not res["ok"] and res["exit_code"] == 3 and res["duration_s"] >= 0
    assert "to 1.1.0 with DB_PASSWORD=********" in res["output_tail"]
    assert "supersecretvalue" not in json.dumps(res)


@pytest.mark.parametrize("path, body, status, code", [
    ("/v1/instances/acme/hooks/rm-rf/run", {"content": "x", "deadline_s": 5, "fence": 1}, 400, "bad_request"),
    (HOOK, {"deadline_s": 5, "fence": 1}, 400, "bad_request"),
    (HOOK, {"content": "{marker}", "deadline_s": 99999, "fence": 1}, 400, "bad_request"),
    (HOOK, {"content": "{marker}", "deadline_s": 5}, 400, "bad_request"),
    (HOOK, {"content": "{marker}", "deadline_s": 5, "fence": 1, "to_tag": "$(reboot)"}, 400, "bad_request"),
    (BACKUPS, {"content": "{marker}", "deadline_s": 5, "fence": 1, "keep": 0}, 400, "bad_request"),
    (BACKUPS + "/1-20261130T000000Z/restore", {"content": "{marker}", "deadline_s": 5, "fence": 1}, 404,
     "not_found"),
    ("/v1/instances/nope/hooks/pre_upgrade/run", {"content": "{marker}", "deadline_s": 5, "fence": 1}, 404,
     "not_found"),
])
def test_bad_input_is_a_clear_4xx_and_nothing_runs(client, world, path, body, status, code):
    body = {k: (_marker_script(world) if v == "{marker}" else v) for k, v in body.items()}
    got, res = client.request("POST", path, json=body)
    assert got == status and res["error"]["code"] == code and res["error"]["message"], res
    assert not (world / "ran").exists()


def test_stale_fence_is_409_and_runs_nothing(client, world):
    status, _ = client.request("POST", HOOK, json={"content": "true\n", "deadline_s": 5, "fence": 10})
    assert status == 200
    status, res = client.request("POST", HOOK, json={"content": _marker_script(world), "deadline_s": 5, "fence": 9})
    assert status == 409 and res["error"]["code"] == "fence_rejected"
    assert not (world / "ran").exists()


def test_backup_list_restore_and_keep(client, world):
    backup = 'echo "row $CCP_UPGRADE_ID" > "$CCP_BACKUP_DIR/data.txt"\n'
    ids = []
    for fence in (1, 2, 3):
        status, res = client.request("POST", BACKUPS, json={"content": backup, "deadline_s": 10, "fence": fence,
                                                            "keep": 2, "from_tag": "1.0.0", "to_tag": "1.1.0"})
        assert status == 200 and res["ok"] and res["size_bytes"] == len("row 1\n"), res
        ids.append(res["backup_id"])
    status, listed = client.request("GET", BACKUPS)
    assert status == 200 and [b["id"] for b in listed["backups"]] == ids[1:]
    assert {"id", "created", "size_bytes", "duration_s", "upgrade_id"} == set(listed["backups"][0])
    status, res = client.request("POST", f"{BACKUPS}/{ids[1]}/restore", json={
        "content": 'cp "$CCP_BACKUP_DIR/data.txt" restored.txt\n', "deadline_s": 10, "fence": 4})
    assert status == 200 and res["ok"] and res["backup_id"] == ids[1]
    assert (world / "tenant" / "restored.txt").read_text() == "row 2\n"
