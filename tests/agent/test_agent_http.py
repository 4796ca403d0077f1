"""A real agent on 127.0.0.1: signing failures (401, no side effect), path escapes (400), caps (413), happy paths."""
import itertools
import json
import os
import stat
import time

import pytest
import requests

from ccp.drivers.agent_client import AgentClient, AgentUnreachable
from ccp.protocol.signing import sign_request
from tests.agent.conftest import ENV, KEY, KEY_ID, NEXT_ID, NEXT_KEY, snapshot_tree

WRITE_PATH = "/v1/instances/acme/files/write"


def _write_body(rel="docker-compose.yml", content="changed\n", fence=1):
    return {"files": {rel: {"content": content, "expect_sha256": None}}, "fence": fence}


def _raw(agent, method, path, body: bytes, headers):
    return requests.request(method, agent.url + path, data=body, headers=headers, timeout=10)


def test_health_lists_version_capabilities_instances(client):
    status, body = client.request("GET", "/v1/health")
    assert status == 200 and body["protocol"] == 1 and body["instances"] == ["acme"]
    assert {"files.diff", "files.write", "env.patch", "compose.ps", "scripts.run"} <= set(body["capabilities"])


def _signed(body_obj, *, key_id=KEY_ID, key=KEY, path=WRITE_PATH, now=None, nonce=None):
    body = json.dumps(body_obj).encode()
    return body, sign_request(key_id, key, "POST", path, body, now=now, nonce=nonce)


def test_signature_failures_are_401_with_no_side_effect(agent, world):
    tenant = world / "tenant"
    before = snapshot_tree(tenant)
    body, good = _signed(_write_body())
    attempts = {
        "unsigned": (body, {}),
        "stale": _signed(_write_body(), now=time.time() - 120),
        "future": _signed(_write_body(), now=time.time() + 120),
        "wrong key": _signed(_write_body(), key=b"not-the-key-0123456789abcdef012345"),
        "unknown key id": _signed(_write_body(), key_id="k9"),
        "tampered body": (json.dumps(_write_body(content="evil\n")).encode(), good),
        "tampered path": (body, sign_request(KEY_ID, KEY, "POST", "/v1/instances/acme/files/diff", body)),
        "tampered method": (body, sign_request(KEY_ID, KEY, "PUT", WRITE_PATH, body)),
        "bad signature": (body, {**good, "X-CCP-Signature": "0" * 64}),
    }
    for name, (b, headers) in attempts.items():
        resp = _raw(agent, "POST", WRITE_PATH, b, {**headers, "Content-Type": "application/json"})
        assert resp.status_code == 401, name
        assert resp.json()["error"]["code"] == "unauthorized", name
    assert snapshot_tree(tenant) == before
    assert not (world / "state" / "acme" / "snapshots").exists() or not any(
        (world / "state" / "acme" / "snapshots").iterdir())
    # replay: the first use works, the same signed request again is refused and changes nothing more
    body, headers = _signed(_write_body(content="first\n"))
    assert _raw(agent, "POST", WRITE_PATH, body, headers).status_code == 200
    (tenant / "docker-compose.yml").write_text("operator edit\n")
    resp = _raw(agent, "POST", WRITE_PATH, body, headers)
    assert resp.status_code == 401 and "nonce" in resp.json()["error"]["message"]
    assert (tenant / "docker-compose.yml").read_text() == "operator edit\n"


def test_both_rotation_keys_accepted(agent):
    for key_id, key in ((KEY_ID, KEY), (NEXT_ID, NEXT_KEY)):
        status, _ = AgentClient(agent.url, key_id, key).request("GET", "/v1/health")
        assert status == 200


def _escape_variants(world):
    """>= 50 relative paths that each try to leave the install dir (lexically or through symlinks)."""
    tenant, outside = world / "tenant", world / "outside"
    (tenant / "link_out").symlink_to(outside)
    (tenant / "link_abs_file").symlink_to(outside / "target.txt")
    (tenant / "link_up").symlink_to("..")
    (tenant / "nginx" / "link_up2").symlink_to("../../outside")
    (tenant / "link_chain").symlink_to("nginx/link_up2")
    (tenant / "link_root").symlink_to("/")
    (tenant / "link_self_parent").symlink_to(".")  # inside; combined with '..' lexically below
    lexical = ["..", "../", "../x", "../outside/target.txt", "a/../../outside/target.txt", "./../x",
               "nginx/../../x", "/etc/passwd", "/tmp/x", "//etc/passwd", "x\x00y", "nginx/\x00", "..\\x",
               "nginx\\..\\..\\x", "", ".", "./", "nginx/./../..", "nginx//../x", ".ccp/fence.json",
               "a/" * 600 + "x", "x" * 300]
    via_links = ["link_out/target.txt", "link_out/new.txt", "link_out/sub/new.txt", "link_abs_file",
                 "link_up/outside/target.txt", "link_up/outside/new.txt", "nginx/link_up2/target.txt",
                 "nginx/link_up2/new.txt", "link_chain/target.txt", "link_chain/new.txt",
                 "link_root/tmp/ccp-escape.txt", "link_root/etc/hostname", "link_self_parent/../x",
                 "link_up", "link_out"]
    prefixes = ["", "nginx/", "deep/er/"]
    generated = [p + s for p, s in itertools.product(prefixes, ["../../x", "../../../outside/new.txt"])]
    generated += [f"{'../' * n}outside/new{n}.txt" for n in range(1, 6)]
    generated += [f"link_out/{'sub/' * n}n{n}.txt" for n in range(1, 5)]
    return lexical + via_links + generated


def test_path_escapes_are_400_and_nothing_outside_touched(agent, client, world):
    variants = _escape_variants(world)
    assert len(variants) >= 50
    outside_before = snapshot_tree(world / "outside")
    tenant_before = snapshot_tree(world / "tenant")
    root_listing = set(os.listdir(world))
    for rel in variants:
        for path, body in ((WRITE_PATH, _write_body(rel)), ("/v1/instances/acme/files/diff",
                                                            {"files": {rel: "x"}})):
            status, resp = client.request("POST", path, json=body)
            assert status == 400, (rel, status, resp)
            assert resp["error"]["code"] == "path_refused", (rel, resp)
    assert snapshot_tree(world / "outside") == outside_before
    assert snapshot_tree(world / "tenant") == tenant_before
    assert set(os.listdir(world)) == root_listing
    assert not os.path.exists("/tmp/ccp-escape.txt")


def test_write_diff_restore_roundtrip(client, world):
    tenant = world / "tenant"
    status, diff = client.request("POST", "/v1/instances/acme/files/diff",
                                  json={"files": {"docker-compose.yml": "services: {web: {}}\n",
                                                  ".env": ENV.replace("supersecretvalue", "newsecretvalue")}})
    assert status == 200
    assert diff["files"]["docker-compose.yml"]["status"] == "modified"
    assert "secretvalue" not in json.dumps(diff)
    status, res = client.request("POST", WRITE_PATH, json=_write_body(content="services: {web: {}}\n", fence=3))
    assert status == 200 and res["written"] == ["docker-compose.yml"]
    status, res2 = client.request("POST", "/v1/instances/acme/env/patch",
                                  json={"set": {"IMAGE_TAG": "2.0.0"}, "fence": 3, "snapshot_id": res["snapshot_id"]})
    assert status == 200 and res2["changed"] == ["IMAGE_TAG"]
    status, keys = client.request("GET", "/v1/instances/acme/env/keys")
    assert keys == {"keys": ["IMAGE_TAG", "DB_PASSWORD"], "exists": True, "values": {}}
    status, stale = client.request("POST", "/v1/instances/acme/env/patch", json={"set": {"IMAGE_TAG": "x"}, "fence": 2})
    assert status == 409 and stale["error"]["code"] == "fence_rejected"
    status, restored = client.request("POST", f"/v1/instances/acme/snapshots/{res['snapshot_id']}/restore", json={})
    assert status == 200 and sorted(restored["restored"]) == [".env", "docker-compose.yml"]
    assert (tenant / ".env").read_text() == ENV and (tenant / "docker-compose.yml").read_text() == "services: {}\n"


def test_expectation_mismatch_is_409_and_writes_nothing(client, world):
    before = snapshot_tree(world / "tenant")
    status, body = client.request("POST", WRITE_PATH, json={"files": {
        "docker-compose.yml": {"content": "x", "expect_sha256": "f" * 64},
        "nginx/site.conf": {"content": "y", "expect_sha256": None}}, "fence": 1})
    assert status == 409 and body["error"]["paths"] == ["docker-compose.yml"]
    assert snapshot_tree(world / "tenant") == before


def test_caps_are_413(client, world):
    before = snapshot_tree(world / "tenant")
    status, body = client.request("POST", WRITE_PATH, json=_write_body(content="x" * 70_000))
    assert status == 413 and body["error"]["code"] == "too_large"
    many = {f"f{i}.txt": {"content": "x", "expect_sha256": None} for i in range(11)}
    status, body = client.request("POST", WRITE_PATH, json={"files": many, "fence": 1})
    assert status == 413
    assert snapshot_tree(world / "tenant") == before


def test_bad_input_is_400_with_message(client):
    for path, body in [(WRITE_PATH, {"files": {"a": {"content": 1}}, "fence": 1}),
                       (WRITE_PATH, {"files": {"a": {"content": "x"}}, "fence": "1"}),
                       ("/v1/instances/acme/env/patch", {"set": {"bad key": "v"}, "fence": 1}),
                       ("/v1/instances/acme/compose/ps", {"deadline_s": 99999}),
                       ("/v1/instances/acme/scripts/rm-rf", {"deadline_s": 5})]:
        status, resp = client.request("POST", path, json=body)
        assert status == 400 and resp["error"]["message"], (path, resp)
    status, resp = client.request("POST", "/v1/instances/nope/files/diff", json={"files": {"a": "b"}})
    assert status == 404 and "nope" in resp["error"]["message"]


def test_compose_and_scripts_over_http(client, world):
    scripts = world / "tenant" / "scripts"
    scripts.mkdir()
    (scripts / "upgrade.sh").write_text("echo upgraded\n")
    status, res = client.request("POST", "/v1/instances/acme/scripts/upgrade", json={"deadline_s": 10})
    assert status == 200 and res["ok"] and "upgraded" in res["output_tail"]


def test_unreachable_agent_names_url():
    client = AgentClient("http://127.0.0.1:9", KEY_ID, KEY, connect_timeout=0.5)
    with pytest.raises(AgentUnreachable, match="127.0.0.1:9"):
        client.request("GET", "/v1/health")


def test_snapshot_files_are_private(client, world):
    _, res = client.request("POST", WRITE_PATH, json=_write_body())
    snap = world / "state" / "acme" / "snapshots" / res["snapshot_id"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in snap.rglob("*") if p.is_file())
