"""The agent's Flask app: hostops over signed HTTP (protocol v1, see DESIGN.md "Agent protocol").

Every request -- health included -- must be signed; verification runs before any handler, so a bad request gets
401 and touches nothing. Errors are JSON ``{"error": {"code", "message"}}``.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from datetime import datetime, timezone

from flask import Flask, Response, abort, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ccp import __version__
from ccp.agent import update as agent_update
from ccp.agent.config import AgentConfig
from ccp.agent.runtime import Answer, RuntimeFacts, dir_entries, disk_free, running_image_digests
from ccp.agent.waiting import wait_for_services
from ccp import protocol
from ccp.protocol import PROTOCOL_VERSION
from ccp.protocol.signing import RequestVerifier, SignatureError
from ccp.bodies import parse_json, read_body
from ccp.hostops.dryrun import is_dry_run
from ccp.hostops.errors import BadRequest, HostOpsError, NotFound
from ccp.hostops.tenant import TenantHost

DEFAULT_DEADLINE_S = 600.0
log = logging.getLogger("ccp.agent")


def build_hosts(config: AgentConfig) -> dict[str, TenantHost]:
    """Create one TenantHost per configured instance and run its crash recovery."""
    hosts = {}
    for slug, inst in config.instances.items():
        host = TenantHost(inst.install_dir, inst.project, compose_command=config.compose_command,
                          compose_files=inst.compose_files, snapshot_keep=config.snapshot_keep,
                          state_dir=config.state_dir / slug, diff_limit_bytes=config.diff_limit_bytes,
                          max_files=config.max_files)
        outcome = host.recover()
        if outcome:
            log.warning("instance %s: interrupted write set %s at start-up", slug, outcome)
        hosts[slug] = host
    return hosts


def create_agent_app(config: AgentConfig, *, verifier: RequestVerifier | None = None) -> Flask:
    """Return the agent WSGI app for a validated ``config`` (recovery of each instance runs here)."""
    app = Flask("ccp.agent")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    verifier = verifier or RequestVerifier(config.keys)
    hosts = build_hosts(config)
    runtime = RuntimeFacts(config.compose_command)

    def error(status: int, code: str, message: str):
        return jsonify({"error": {"code": code, "message": message}}), status

    @app.errorhandler(HostOpsError)
    def hostops_error(exc: HostOpsError):
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = "too_large" if exc.code == 413 else (exc.name or "error").lower().replace(" ", "_")
        return error(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("agent error on %s %s", request.method, request.path)
        return error(500, "internal_error", "the agent hit an unexpected error; see its log")

    @app.before_request
    def check_signature():
        body = read_body(request, config.max_body_bytes)  # 413 past the limit, however the body is framed
        qs = request.query_string.decode("latin-1")
        path = request.path + (f"?{qs}" if qs else "")
        try:
            g.key_id = verifier.verify(request.method, path, body, request.headers)
        except SignatureError as exc:
            log.warning("401 %s %s: %s", request.method, request.path, exc)
            return error(401, "unauthorized", f"request not accepted: {exc}")
        return None

    @app.after_request
    def no_store(resp):
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def host_for(slug: str) -> TenantHost:
        if slug not in hosts:
            raise NotFound(f"this agent serves no instance {slug!r}")
        return hosts[slug]

    def body() -> dict:
        raw = request.get_data()
        try:
            data = parse_json(raw) if raw else {}
        except ValueError as exc:
            raise BadRequest(f"request body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object")
        return data

    def deadline(data: dict) -> float:
        value = data.get("deadline_s", DEFAULT_DEADLINE_S)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > config.max_deadline_s:
            raise BadRequest(f"deadline_s exceeds this agent's limit of {config.max_deadline_s} s")
        return value

    @app.get("/v1/health")
    def health():
        caps = protocol.host_capabilities(is_dry_run(config.compose_command)) + agent_update.capabilities()
        details = {slug: {"project": inst.project, "install_dir": str(inst.install_dir),
                          **dir_entries(inst.install_dir), "disk_free_bytes": disk_free(inst.install_dir)}
                   for slug, inst in sorted(config.instances.items())}
        return jsonify({"version": __version__, "protocol": PROTOCOL_VERSION, "capabilities": caps,
                        "instances": sorted(hosts), protocol.HEALTH_RUNTIME: runtime.get(),
                        protocol.HEALTH_INSTANCE_DETAILS: details,
                        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                        **agent_update.health_fields()})

    @app.get("/v1/instances/<slug>/images")
    def images(slug):
        host = host_for(slug)
        if is_dry_run(config.compose_command):  # the stand-in runtime pulls nothing: no digest to tell
            return jsonify({"image_digests": {}})
        found = running_image_digests(host.project)
        if isinstance(found, Answer):
            return error(503, "docker_unavailable", found.text)
        return jsonify({"image_digests": found})

    @app.post("/v1/instances/<slug>/files/diff")
    def files_diff(slug):
        data = body()
        return jsonify(host_for(slug).diff_files(data.get("files"), data.get("env_secret_keys")))

    @app.post("/v1/instances/<slug>/files/write")
    def files_write(slug):
        data = body()
        return jsonify(host_for(slug).write_files(data.get("files"), data.get("fence")))

    @app.post("/v1/instances/<slug>/snapshots/<snapshot_id>/restore")
    def snapshot_restore(slug, snapshot_id):
        return jsonify(host_for(slug).restore_snapshot(snapshot_id, body().get("fence")))

    @app.get("/v1/instances/<slug>/env/keys")
    def env_keys(slug):
        return jsonify(host_for(slug).env_keys(request.args.getlist("value") or None))

    @app.post("/v1/instances/<slug>/env/patch")
    def env_patch(slug):
        data = body()
        return jsonify(host_for(slug).env_patch(data.get("set"), data.get("fence"), data.get("snapshot_id")))

    @app.post("/v1/instances/<slug>/compose/wait")
    def compose_wait(slug):
        host = host_for(slug)
        wait_s = deadline(body())
        if not isinstance(wait_s, (int, float)) or isinstance(wait_s, bool) or wait_s < 0:
            raise BadRequest("deadline_s must be a number of seconds >= 0")
        ps_deadline = max(10.0, min(60.0, float(wait_s)))
        return jsonify(wait_for_services(host.project, float(wait_s), lambda: host.compose("ps", ps_deadline),
                                         use_engine=not is_dry_run(config.compose_command)))

    @app.post("/v1/instances/<slug>/compose/<action>")
    def compose(slug, action):
        if action not in ("pull", "up", "ps", "down"):
            abort(404)
        host, data = host_for(slug), body()
        limit = deadline(data)  # checked before an answer starts streaming
        if data.get("stream") is True:
            return streamed(lambda on_output: host.compose(action, limit, on_output))
        return jsonify(host.compose(action, limit))

    @app.post("/v1/instances/<slug>/scripts/<name>")
    def scripts(slug, name):
        host, data = host_for(slug), body()
        limit = deadline(data)
        if data.get("stream") is True:
            return streamed(lambda on_output: host.run_script(name, limit, on_output))
        return jsonify(host.run_script(name, limit))

    def streamed(run):
        """Answer a command as JSON lines: `{"output": text}` as it writes (masked, whole lines), then
        `{"result": {...}}` (a refusal inside it carries `status` and `error`). The command runs in its own thread;
        the request's thread writes what it hands over."""
        lines: queue.SimpleQueue = queue.SimpleQueue()
        done = object()

        def work() -> None:
            try:
                result = run(lambda text: lines.put(text))
            except HostOpsError as exc:
                result = {**exc.to_dict(), "status": exc.status}
            except Exception:  # noqa: BLE001 - the stream has begun: the error must travel inside it
                log.exception("agent error in a streamed command")
                result = {"error": {"code": "internal_error", "message": "the agent hit an unexpected error; "
                                                                         "see its log"}, "status": 500}
            lines.put((done, result))

        threading.Thread(target=work, daemon=True, name="agent-stream").start()

        def generate():
            while True:
                item = lines.get()
                if isinstance(item, tuple) and item and item[0] is done:
                    yield json.dumps({"result": item[1]}) + "\n"
                    return
                yield json.dumps({"output": item}) + "\n"
        return Response(generate(), mimetype="application/x-ndjson")

    @app.post("/v1/instances/<slug>/hooks/<hook>/run")
    def hook_run(slug, hook):
        data = body()
        return jsonify(host_for(slug).run_hook(hook, data.get("content"), deadline(data), data.get("fence"),
                                               data.get("from_tag"), data.get("to_tag")))

    @app.get("/v1/instances/<slug>/backups")
    def backups_list(slug):
        return jsonify(host_for(slug).list_backups())

    @app.post("/v1/instances/<slug>/backups")
    def backup_create(slug):
        data = body()
        return jsonify(host_for(slug).create_backup(data.get("content"), deadline(data), data.get("fence"),
                                                    data.get("keep", 3), data.get("from_tag"), data.get("to_tag")))

    @app.post("/v1/instances/<slug>/backups/<backup_id>/restore")
    def backup_restore(slug, backup_id):
        data = body()
        return jsonify(host_for(slug).restore_backup(backup_id, data.get("content"), deadline(data),
                                                     data.get("fence"), data.get("from_tag"), data.get("to_tag")))

    agent_update.register(app, error)
    return app
