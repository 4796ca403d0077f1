"""ccp.services.enrollment.probe_agent against real agents on 127.0.0.1 (tests/tenants.py start_agent): what
"Add instance" shows the moment URL and key are typed, and a plain sentence for each way it can go wrong."""
from __future__ import annotations

import http.server
import threading
import time
from types import SimpleNamespace

import pytest
from flask import Flask, jsonify

from ccp.services.enrollment import probe_agent
from ccp.services.errors import ServiceError
from tests.deploy.helpers import free_port
from tests.tenants import start_agent

SETTINGS = SimpleNamespace(agent_connect_timeout_s=1.0, agent_read_timeout_s=10.0)


@pytest.fixture
def agent(tmp_path):
    acme = tmp_path / "acme"
    (acme / "scripts").mkdir(parents=True)
    (acme / "docker-compose.yml").write_text("services: {}\n")
    (acme / ".env").write_text("IMAGE_TAG=v1\nDB_PASSWORD=not-for-ccp-eyes\n")
    (tmp_path / "fresh").mkdir()
    handle = start_agent(tmp_path / "state", {"acme": acme, "fresh": tmp_path / "fresh"}, project="acme")
    yield handle
    handle.stop()


def test_a_good_agent_tells_everything_enrollment_shows(agent):
    probe = probe_agent(agent.url, agent.key_id, agent.key, slug="acme", settings=SETTINGS)
    assert probe.ok and probe.problem is None and probe.reachable
    assert probe.protocol == 1 and probe.version and "files.write" in probe.capabilities
    assert probe.missing_capabilities == () and probe.dry_run and probe.runtime_reported
    assert probe.compose_version == "dry-run" and probe.docker_version is None
    acme, fresh = probe.instance("acme"), probe.instance("fresh")
    assert acme.files == (".env", "docker-compose.yml", "scripts/") and acme.file_count == 3 and not acme.empty
    assert acme.project == "acme" and acme.install_dir.endswith("/acme") and acme.exists
    assert fresh.empty and fresh.files == ()
    assert any("dry-run runtime" in w for w in probe.warnings)
    assert agent.key not in repr(probe) and "not-for-ccp-eyes" not in repr(probe)


@pytest.mark.parametrize("wrong,expected", [
    ("key", "the key does not match"),
    ("key_id", "knows no key by this key id"),
])
def test_a_wrong_key_says_which_part_is_wrong(agent, wrong, expected):
    key_id = "someone-else" if wrong == "key_id" else agent.key_id
    key = "x" * 40 if wrong == "key" else agent.key
    probe = probe_agent(agent.url, key_id, key, settings=SETTINGS)
    assert not probe.ok and probe.reachable and expected in probe.problem
    assert agent.key not in probe.problem


def test_an_agent_that_does_not_serve_the_slug(agent):
    probe = probe_agent(agent.url, agent.key_id, agent.key, slug="other", settings=SETTINGS)
    assert not probe.ok and "serves no instance 'other' (it serves: acme, fresh)" in probe.problem


def test_nobody_listening_answers_quickly_in_plain_words():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    probe = probe_agent(url, "k1", "k" * 40, settings=SETTINGS)
    assert time.monotonic() - started < 10
    assert not probe.reachable and not probe.ok
    assert f"the agent at {url} cannot be reached" in probe.problem and "firewall" in probe.problem


def test_a_web_server_that_is_not_an_agent():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        probe = probe_agent(f"http://127.0.0.1:{server.server_port}", "k1", "k" * 40, settings=SETTINGS)
    finally:
        server.shutdown()
        server.server_close()
    assert not probe.ok and "not like a CCP agent" in probe.problem


def _old_agent(answer: dict):
    """An agent of an earlier release: health without the runtime fields (signatures are not checked here)."""
    app = Flask("old-agent")
    app.get("/v1/health")(lambda: jsonify(answer))
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_an_older_agent_without_runtime_fields_still_enrolls():
    from ccp.protocol import CAPABILITIES

    server = _old_agent({"version": "0.0.9", "protocol": 1, "capabilities": list(CAPABILITIES), "instances": ["acme"]})
    try:
        probe = probe_agent(f"http://127.0.0.1:{server.server_port}", "k1", "k" * 40, slug="acme", settings=SETTINGS)
    finally:
        server.shutdown()
    assert probe.ok and not probe.runtime_reported and probe.instance("acme").empty is None
    assert any("too old to report" in w for w in probe.warnings)


@pytest.mark.parametrize("answer,expected", [
    ({"version": "9", "protocol": 2, "capabilities": [], "instances": []}, "speaks protocol 2"),
    ({"version": "0.0.1", "protocol": 1, "capabilities": ["files.diff"], "instances": []}, "too old for CCP's upgrades"),
    ({"hello": "world"}, "not with a CCP agent's answer"),
])
def test_an_agent_ccp_cannot_work_with(answer, expected):
    server = _old_agent(answer)
    try:
        probe = probe_agent(f"http://127.0.0.1:{server.server_port}", "k1", "k" * 40, settings=SETTINGS)
    finally:
        server.shutdown()
    assert probe.reachable and not probe.ok and expected in probe.problem


@pytest.mark.parametrize("url,key_id,key,field", [
    ("ftp://host", "k1", "k" * 40, "agent_url"),
    ("http://user:pw@host:8765", "k1", "k" * 40, "agent_url"),
    ("http://host:8765", "bad id", "k" * 40, "agent_key_id"),
    ("http://host:8765", "k1", "short", "agent_key"),
    ("http://host:8765", "k1", "k" * 40 + "\n", "agent_key"),
])
def test_malformed_input_is_refused_before_any_call(url, key_id, key, field):
    with pytest.raises(ServiceError) as err:
        probe_agent(url, key_id, key, settings=SETTINGS)
    assert err.value.status == 400 and field in err.value.details
    assert "k" * 40 not in str(err.value.details)
