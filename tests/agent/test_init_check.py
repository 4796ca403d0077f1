"""`ccp agent init` and `ccp agent check` on real files, with a fake `docker` on PATH where Docker is asked.

The fake answers `docker version`, `docker compose version` and `docker ps` from files the test writes, so each
case says exactly what Docker "knows"; tests/e2e/test_containers_agent.py asks a real engine.
"""
from __future__ import annotations

import email.utils
import http.server
import json
import re
import shlex
import socket
import socketserver
import stat
import threading
import time

import pytest
from click.testing import CliRunner

from ccp.agent.cli import agent_command
from ccp.agent.config import load_config

FAKE_DOCKER_CLI = """#!/bin/sh
if [ -n "$FAKE_DOCKER_DOWN" ]; then
    echo "Cannot connect to the Docker daemon at tcp://10.0.0.1:2375. Is the docker daemon running?" >&2
    exit 1
fi
case "$1 $2" in
  "version --format") echo 24.0.7 ;;
  "compose version") echo 2.29.1 ;;
  "ps --all") cat "$FAKE_DOCKER_PS" 2>/dev/null ;;
  *) echo "fake docker: unexpected $*" >&2; exit 2 ;;
esac
"""


class _EngineAPI(http.server.BaseHTTPRequestHandler):
    """The two Docker engine API calls the agent makes, answered from ``self.server.containers``."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/version":
            body = {"Version": "24.0.7", "ApiVersion": "1.43"}
        elif self.path.startswith("/containers/json?"):
            body = [{"Labels": {"com.docker.compose.project": project,
                                "com.docker.compose.project.working_dir": workdir}}
                    for workdir, project in self.server.containers]
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def docker(tmp_path, monkeypatch):
    """A fake Docker: an engine API on a Unix socket (DOCKER_HOST) and a `docker` CLI on PATH (for compose, and
    for a TCP DOCKER_HOST). ``docker.containers({workdir: project})`` sets the containers both report."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(FAKE_DOCKER_CLI)
    (bindir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    ps = tmp_path / "docker-ps.txt"
    ps.write_text("")
    monkeypatch.setenv("FAKE_DOCKER_PS", str(ps))
    monkeypatch.delenv("FAKE_DOCKER_DOWN", raising=False)
    for name in ("CCP_AGENT_KEYS", "CCP_AGENT_CONFIG", "CCP_AGENT_INSTANCES", "CCP_AGENT_COMPOSE_COMMAND"):
        monkeypatch.delenv(name, raising=False)
    sock = tmp_path / "docker.sock"
    server = _UnixHTTPServer(str(sock), _EngineAPI)
    server.containers = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")

    class Docker:
        def containers(self, by_dir: dict):
            server.containers = list(by_dir.items())
            ps.write_text("".join(f"{project}\t{workdir}\n" for workdir, project in by_dir.items()))

        def down(self):  # the socket file stays, nobody answers: what a stopped daemon looks like
            server.shutdown()
            server.server_close()
            monkeypatch.setenv("FAKE_DOCKER_DOWN", "1")

        def over_tcp(self):
            monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")  # never contacted: the fake CLI answers

    yield Docker()
    server.shutdown()
    server.server_close()


@pytest.fixture
def srv(tmp_path):
    """/srv/acme: a registered tenant installed by its own script; /srv/empty: a dir for a provisioned one."""
    acme = tmp_path / "srv" / "acme"
    acme.mkdir(parents=True)
    (acme / "docker-compose.yml").write_text("services:\n  web:\n    image: web:${IMAGE_TAG}\n")
    (acme / ".env").write_text("IMAGE_TAG=v1.4\nDOMAIN=acme.example.com\nDB_PASSWORD=do-not-print-me\n")
    (acme / "scripts").mkdir()
    (tmp_path / "srv" / "empty").mkdir()
    return tmp_path / "srv"


def init(tmp_path, *args):
    base = ["init", "--config", str(tmp_path / "etc" / "agent.toml"), "--state-dir", str(tmp_path / "state"),
            "--url", "http://tenant-1.example:8765", "--key-id", "k1"]
    return CliRunner().invoke(agent_command, base + list(args), catch_exceptions=False)


def check(config, *args):
    return CliRunner().invoke(agent_command, ["check", "--config", str(config), *args], catch_exceptions=False)


def test_init_writes_config_and_a_0600_key_and_prints_the_ccp_side(tmp_path, srv, docker):
    result = init(tmp_path, "--instance", str(srv / "acme"), "--instance", f"fresh={srv / 'empty'}")
    assert result.exit_code == 0, result.output
    key_file, config_file = tmp_path / "etc" / "agent.key", tmp_path / "etc" / "agent.toml"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32 and key not in config_file.read_text()
    config = load_config(config_file, env={})
    assert config.keys == {"k1": key.encode()} and config.key_files == {"k1": key_file}
    assert config.instances["acme"].project == "acme" and config.instances["fresh"].project == "empty"
    lines = result.output.splitlines()
    assert result.output.count(key) == 1 and "do-not-print-me" not in result.output
    assert ("     ccp instance add acme --agent-url http://tenant-1.example:8765 --agent-key-id k1 --agent-key-stdin "
            "--project acme --domain acme.example.com --tag v1.4 --registered") in lines
    assert ("     ccp instance add fresh --agent-url http://tenant-1.example:8765 --agent-key-id k1 --agent-key-stdin "
            "--project empty --domain DOMAIN") in lines
    assert "replace DOMAIN" in result.output


def test_the_printed_command_registers_the_instance_on_ccp(tmp_path, srv, docker, app, db):
    from ccp.cli import main
    from ccp.models import Instance

    result = init(tmp_path, "--instance", str(srv / "acme"))
    key = (tmp_path / "etc" / "agent.key").read_text().strip()
    line = next(x for x in result.output.splitlines() if "ccp instance add" in x)
    argv = shlex.split(line)[1:]
    added = app.test_cli_runner().invoke(main, argv, input=key + "\n")
    assert added.exit_code == 0, added.output
    inst = db.session.scalar(db.select(Instance).filter_by(slug="acme"))
    assert (inst.agent_url, inst.agent_key_id, inst.compose_project, inst.image_tag, inst.domain) == (
        "http://tenant-1.example:8765", "k1", "acme", "v1.4", "acme.example.com")
    assert inst.is_registered and inst.agent_key() == key


def test_init_refuses_to_overwrite_without_force(tmp_path, srv, docker):
    assert init(tmp_path, "--instance", str(srv / "acme")).exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "etc").iterdir()}
    again = init(tmp_path, "--instance", str(srv / "acme"))
    assert again.exit_code != 0 and "already exists: rerun with --force" in again.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "etc").iterdir()} == before
    forced = init(tmp_path, "--instance", str(srv / "acme"), "--force")
    assert forced.exit_code == 0
    assert (tmp_path / "etc" / "agent.key").read_bytes() != before["agent.key"]
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["agent.key", "agent.toml"]  # no temp files


@pytest.mark.parametrize("args,message", [
    ((), "name at least one instance"),
    (("--instance", "relative/dir"), "must be an absolute path"),
    (("--instance", "/does/not/exist"), "not an existing directory"),
    (("--instance", "Bad_Slug=/tmp"), "slug 'Bad_Slug'"),
    (("--instance", "new=/tmp"), "reserved"),
    (("--instance", "a=/tmp", "--instance", "a=/var"), "named twice"),
    (("--instance", "a=/tmp", "--project", "b=x"), "name no --instance: b"),
    (("--instance", "a=/tmp", "--project", "a=Not Valid"), "compose project 'Not Valid'"),
    (("--instance", "a=/tmp", "--listen", "8765"), "must be HOST:PORT"),
    (("--instance", "a=/tmp", "--url", "ftp://x"), "http(s)://"),
    (("--instance", "a=/tmp", "--key-id", "k 1"), "--key-id"),
])
def test_init_refuses_bad_input_and_writes_nothing(tmp_path, docker, args, message):
    result = init(tmp_path, *args)
    assert result.exit_code != 0 and "nothing written" in result.output and message in result.output
    assert not (tmp_path / "etc").exists()


def test_init_takes_the_project_of_the_containers_started_from_the_dir(tmp_path, srv, docker):
    docker.containers({str(srv / "acme"): "legacy-acme", "/elsewhere": "other"})
    init(tmp_path, "--instance", str(srv / "acme"))
    text = (tmp_path / "etc" / "agent.toml").read_text()
    assert 'project = "legacy-acme"  # from its containers\' compose label' in text


def test_init_stops_when_two_projects_ran_from_one_dir_and_takes_an_explicit_project(tmp_path, srv, docker):
    (srv / "acme2").mkdir()
    docker.containers({str(srv / "acme"): "one"})
    docker.containers({str(srv / "acme"): "one", f"{srv / 'acme'}/": "two"})
    result = init(tmp_path, "--instance", str(srv / "acme"))
    assert result.exit_code != 0 and "2 compose projects" in result.output and "one, two" in result.output
    assert init(tmp_path, "--instance", str(srv / "acme"), "--project", "acme=two").exit_code == 0
    assert load_config(tmp_path / "etc" / "agent.toml", env={}).instances["acme"].project == "two"


def test_without_docker_the_project_comes_from_env_then_compose_name_then_folder(tmp_path, srv, docker):
    docker.down()
    (srv / "named").mkdir()
    (srv / "named" / "compose.yaml").write_text("name: from-compose\nservices: {}\n")
    (srv / "acme" / ".env").write_text("COMPOSE_PROJECT_NAME=from-env\n")
    result = init(tmp_path, "--instance", str(srv / "acme"), "--instance", str(srv / "named"),
                  "--instance", str(srv / "empty"))
    assert result.exit_code == 0, result.output
    assert "Docker did not answer (the Docker daemon is not running" in result.output
    config = load_config(tmp_path / "etc" / "agent.toml", env={})
    assert {s: i.project for s, i in config.instances.items()} == {
        "acme": "from-env", "named": "from-compose", "empty": "empty"}
    assert config.instances["named"].compose_files == ("compose.yaml",)


def _good_config(tmp_path, srv, docker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = init(tmp_path, "--instance", str(srv / "acme"), "--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 0, result.output
    return tmp_path / "etc" / "agent.toml"


def test_check_passes_a_good_config(tmp_path, srv, docker):
    docker.containers({str(srv / "acme"): "acme"})
    result = check(_good_config(tmp_path, srv, docker))
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    for expected in ("is valid: 1 instance(s), key(s) k1", "readable by its owner only", "holds 3 entries",
                     "running containers belong to project 'acme'", "version 2.29.1",
                     "the Docker engine answers: version 24.0.7"):
        assert expected in result.output


@pytest.mark.parametrize("breakage,message", [
    ("key_mode", "may be read by others (mode 0644): chmod 600"),
    ("compose_file", "holds files but not docker-compose.yml"),
    ("project", "belong to compose project other, but project = 'acme'"),
    ("docker", "Docker does not answer: the Docker daemon is not running (nothing answers on"),
    ("key_missing", "the config cannot be used: key_files.k1:"),
])
def test_check_says_what_is_wrong(tmp_path, srv, docker, breakage, message):
    config = _good_config(tmp_path, srv, docker)
    if breakage == "key_mode":
        (tmp_path / "etc" / "agent.key").chmod(0o644)
    elif breakage == "compose_file":
        (srv / "acme" / "docker-compose.yml").rename(srv / "acme" / "old.yml")
    elif breakage == "project":
        docker.containers({str(srv / "acme"): "other"})
    elif breakage == "docker":
        docker.down()
    elif breakage == "key_missing":
        (tmp_path / "etc" / "agent.key").unlink()
    result = check(config)
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert any(message in line for line in failed), result.output


class _DateServer(http.server.BaseHTTPRequestHandler):
    offset = 0.0

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(time.time() + self.offset, usegmt=True)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("offset,level,message", [(0, "ok", "within"), (-300, "FAIL", r"clock is \+30[01] s off")])
def test_check_compares_the_clock_with_ccp(tmp_path, srv, docker, offset, level, message):
    handler = type("H", (_DateServer,), {"offset": offset})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = check(_good_config(tmp_path, srv, docker), "--ccp-url", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    line = next(x for x in result.output.splitlines() if "of CCP" in x or "off CCP" in x)
    assert line.startswith(level) and re.search(message, line), result.output


def test_a_tcp_docker_host_is_asked_through_the_docker_cli(tmp_path, srv, docker):
    docker.over_tcp()
    docker.containers({str(srv / "acme"): "legacy-acme"})
    result = init(tmp_path, "--instance", str(srv / "acme"))
    assert result.exit_code == 0 and "compose project 'legacy-acme' from its containers" in result.output
    docker.down()
    checked = check(tmp_path / "etc" / "agent.toml")
    assert "FAIL  Docker does not answer: the Docker daemon is not running" in checked.output
