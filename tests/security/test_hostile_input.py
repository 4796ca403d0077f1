"""Hostile input against every route of /api/openapi.json and every UI form (issue #11).

Properties, for every request below (a catalogue that covers each input class on each route explicitly, then
hypothesis generating more of each class):
- never a 5xx;
- an API error has the documented shape {"error": {"code", "message", "details"}} and a 4xx status; invalid input
  gets the documented refusal (400/404 for refs, 400 for query and body framing, 413, 415, 422 for fields);
- a UI refusal is a 4xx, or a 200/3xx that changed nothing;
- a refused request changes nothing: no row in any table (audit entries included), no changed row, no RQ job
  (`hostile.Ledger`). A signed CI webhook delivery may leave its one `rejected` delivery row (docs/api.md:
  "every signed delivery is kept").

Input classes (tests/security/hostile.py): deeply nested JSON; non-ASCII digits, RTL/format marks, NUL, lone surrogates
and very long strings in path refs and fields; huge and odd numbers (1e309, 2**64, -0, 10**400 as JSON text) in ids,
page parameters and numeric fields; every wrong JSON type for every field; `null` and other non-objects as the body;
framing (chunked bodies over the 1 MiB limit and lying Content-Length on a real HTTP server; wrong Content-Type, empty
body, Content-Length mismatches through the test client); unknown query parameters; ids past 2**31.

The state the probes run against: prov-1 (id 1, idle - what `/api/instances/<U+0661>/quick-upgrade` must never
reach), prov-2 with queued upgrade #1 (cancellable), rollout #1 (succeeded), API token #1 (admin), an admin logged in
through the real login form. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.security import hostile as H
from tests.security.hostile import (
    ErrorLog,
    Ledger,
    Probe,
    Violation,
    chunked,
    error_shape_problem,
    group,
    raw_request,
    serve,
    summarize,
)

WEBHOOK_SECRET = "hostile-input-webhook-secret-0123456789"
LIMIT = 1024 * 1024  # the documented API body limit (1 MiB)
REF_REFUSED = frozenset({400, 404})
INVALID = frozenset({400, 422})
# No shrinking: a generated probe is one small request, printed whole; the catalogue holds the minimal reproducers.
HYPOTHESIS = settings(max_examples=60, deadline=None, derandomize=True, database=None, print_blob=False,
                      phases=(Phase.explicit, Phase.reuse, Phase.generate), suppress_health_check=list(HealthCheck))

# Fields whose every hostile value must be refused (patterns, enums, URLs, paths, numbers with bounds); other string
# fields (name, agent_key, var/secret values) may accept odd text - then only "no 5xx" and "refusal changes nothing".
STRICT_FIELDS = {"slug", "domain", "driver", "agent_url", "agent_key_id", "install_dir", "compose_project",
                 "image_tag", "template_set", "imageTag", "plan", "tag", "instances", "health_urls", "canary",
                 "waveSize", "is_registered", "vars", "secrets", "scope", "expires_days",
                 "kind", "image", "repository", "wave_size", "min_age_s", "enabled",  # (receivers)
                 "cron", "events", "kinds", "unreachableAfterS", "unreachable_after_min"}  # (fleet awareness)
NUMBER_FIELDS = {"canary", "waveSize", "expires_days", "wave_size", "min_age_s", "unreachable_after_min"}
REMOTE = {"driver": "remote", "agent_url": "http://127.0.0.1:9", "agent_key_id": "ccp", "agent_key": "k" * 32}
CONTEXT = {"agent_url": REMOTE, "agent_key_id": REMOTE, "agent_key": REMOTE, "install_dir": {"driver": "local"}}
PLAN_STRINGS = ["\u0661" * 64, "g" * 64, "A" * 64, "0" * 63 + "\x00", "0" * 63 + "\u0660"]
# Receivers' intake proves itself with the provider's signature, token or URL secret, which these probes do not
# carry (signed hostile payloads: tests/api/test_hooks.py): every probe is refused before a row is written.
HOOK_REFUSED = frozenset({400, 401, 404, 413})


# --- the world the probes run against -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """One operation of the OpenAPI document."""

    method: str
    template: str
    params: dict  # name -> (location, schema)
    body: str | None  # components/schemas name of the JSON body
    body_required: bool

    @property
    def route(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def webhook(self) -> str | None:
        """The CI webhook's signing scheme, as documented: "standard" (webhook-id/-timestamp/-signature) or
        "legacy" (X-CCP-Delivery/X-CCP-Signature); None for token-authenticated operations."""
        headers = {name.lower() for name, (loc, _) in self.params.items() if loc == "header"}
        return "standard" if "webhook-id" in headers else ("legacy" if "x-ccp-delivery" in headers else None)

    def path_params(self) -> dict:
        return {n: s for n, (loc, s) in self.params.items() if loc == "path"}

    def query_params(self) -> dict:
        return {n: s for n, (loc, s) in self.params.items() if loc == "query"}


@dataclass
class World:
    app: object
    db: object
    client: object  # admin session (UI) - the API ignores its cookie and uses the token
    anon: object  # a client that is not logged in (the login form)
    token: str
    csrf: str
    anon_csrf: str
    ledger: Ledger
    errors: ErrorLog
    ops: list
    schemas: dict
    slug: str
    install_dir: str
    ids: dict  # path parameter -> a real id (upgrade #1 queued, rollout #1, token #1)
    deliveries: itertools.count = field(default_factory=itertools.count)

    def values(self) -> dict:
        return {"ref": self.slug, "slug": self.slug, "name": "probe-hook", "receiver": "probe-hook",
                "secret": "not-the-secret", "kind": "drift", **{k: str(v) for k, v in self.ids.items()}}


@pytest.fixture
def app_env(app_env):
    """The shared test environment plus a webhook secret, so the CI webhook route is live."""
    return {**app_env, "CCP_WEBHOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture
def world(app, client, tenant_factory, make_token, login, monkeypatch):
    """prov-1 (id 1, idle), prov-2 with queued upgrade #1, rollout #1 (succeeded), admin token #1, an admin logged in
    through the login form; seeded through the API itself, the documented interface."""
    from flask import g, request_started

    from ccp.extensions import db, worker_queues

    target, busy = tenant_factory(), tenant_factory()
    token = make_token("admin")
    auth = {"Authorization": f"Bearer {token}"}
    upgrade = client.post(f"/api/instances/{busy.slug}/quick-upgrade", json={}, headers=auth)
    rollout = client.post("/api/rollouts", json={"tag": "v1"}, headers=auth)  # every tenant on v1: succeeded
    assert (upgrade.status_code, rollout.status_code) == (202, 202), (upgrade.get_data(), rollout.get_data())
    ids = (target.id, upgrade.get_json()["id"], rollout.get_json()["id"], _token_id(db))
    assert ids == (1, 1, 1, 1), f"the probes rely on these ids: {ids}"
    _receiver_with_a_delivery(target.slug)
    _channel_and_scan()
    slug, install_dir = target.slug, target.install_dir
    login("admin")

    def fresh_request(sender, **extra):  # a real server gives every request its own g and session
        for name in ("csrf_token", "_login_user", "api_token", "actor"):
            g.pop(name, None)
        db.session.expire_all()

    request_started.connect(fresh_request, app)
    # Hostile log-ins never name a real user, so they only pay the dummy argon2 verify (~0.3 s here, by design):
    # a stand-in that refuses as fast keeps their path and keeps the module quick.
    monkeypatch.setattr("ccp.web.auth.verify_password", lambda hashed, password: False)
    anon = app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    csrf, anon_csrf = _meta_csrf(client), _form_csrf(anon)
    db.session.remove()
    with ErrorLog.installed() as errors:
        yield World(app=app, db=db, client=client, anon=anon, token=token, csrf=csrf, anon_csrf=anon_csrf,
                    ledger=Ledger(db, worker_queues), errors=errors, ops=_operations(doc),
                    schemas=doc["components"]["schemas"], slug=slug, install_dir=install_dir,
                    ids={"upgrade_id": 1, "rollout_id": 1, "token_id": 1, "delivery_id": 1, "channel_id": 1,
                         "run_id": 1})
    request_started.disconnect(fresh_request, app)


def _receiver_with_a_delivery(slug: str) -> None:
    """Receiver `probe-hook` (GitHub; its registry unreachable) and delivery #1 of it, for the receiver routes."""
    from ccp.extensions import db
    from ccp.models import WebhookDelivery
    from ccp.services.receivers import create_receiver

    receiver, _ = create_receiver({"name": "probe-hook", "kind": "github", "image": "127.0.0.1:9/acme/app",
                                   "instances": [slug]}, actor="test")
    db.session.add(WebhookDelivery(source="github", event="release.published", receiver_id=receiver.id,
                                   status="accepted", decision="ignored", repository="acme/app", tag="v2",
                                   detail={"hints": [{"repository": "acme/app", "tag": "v2", "digest": None}]}))
    db.session.commit()


def _channel_and_scan() -> None:
    """Notification channel #1 and scan run #1, for the fleet awareness routes."""
    from ccp.services.notify import create_channel
    from ccp.services.scan_runs import start_scan

    create_channel("probe-channel", "json://127.0.0.1:9/hook", ["scan.drift"], actor="test")
    start_scan(["agents"], actor="test")


def _token_id(db) -> int:
    from ccp.models import ApiToken

    return db.session.execute(db.select(ApiToken.id).order_by(ApiToken.id)).scalars().first()


def _meta_csrf(client) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def _form_csrf(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _operations(doc: dict) -> list[Op]:
    ops = []
    for template, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = {p["name"]: (p["in"], p.get("schema", {})) for p in [*item.get("parameters", []),
                                                                            *op.get("parameters", [])]}
            body, required = None, False
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                body, required = ref.rsplit("/", 1)[-1], bool(op["requestBody"].get("required"))
            ops.append(Op(method.upper(), template, params, body, required))
    assert ops, "the OpenAPI document lists no operation"
    return ops


# --- making and judging probes --------------------------------------------------------------------------------------

def baseline(op: Op, world: World) -> dict:
    """A valid body for `op`: probes change one thing in it, so anything accepted by mistake really acts."""
    bodies = {
        "InstanceCreate": {"slug": "probe-new", "name": "Probe", "domain": "probe-new.example.test", "driver": "local",
                           "install_dir": "/tmp/ccp-hostile/probe-new", "compose_project": "probenew",
                           "image_tag": "v1", "template_set": "default", "is_registered": False},
        "InstanceUpdate": {"name": "Renamed by a probe"},
        "PreviewRequest": {"imageTag": "v2"},
        "ReleaseRequest": {"imageTag": "v2", "plan": "0" * 64},
        "Empty": {},
        "RolloutRequest": {"tag": "v2", "instances": [world.slug], "canary": 1, "waveSize": 5},
        "RolloutPreviewRequest": {"tag": "v2", "instances": [world.slug], "canary": 1, "waveSize": 5},
        "ReceiverCreate": {"name": "probe-hook-new", "kind": "gitea", "image": "127.0.0.1:9/acme/app",
                           "repository": "acme/app", "instances": [world.slug], "semver_range": "^1",
                           "tag_include": "v.*", "tag_exclude": "v0.*", "min_age_s": 60, "canary": 1, "wave_size": 5,
                           "enabled": True},
        "ReceiverUpdate": {"semver_range": "^2", "min_age_s": 120},
        "SecretRotation": {"secret": "probe-secret-0123456789"},
        "ScanRequest": {"kinds": ["agents"]},
        "RollbackRequest": {"plan": "0" * 64},
        "RolloutRollbackRequest": {"canary": 1, "waveSize": 5, "expect": "0" * 64},
        "RolloutRollbackPreviewRequest": {"canary": 1, "waveSize": 5},
        "RestoreRequest": {"confirm": True},
        "StartRequest": {"outsideWindowOk": True, "heldOk": True},
        "WindowRequest": {"cron": "0 2 * * *", "minutes": 120, "timezone": "Europe/Berlin"},
        "HoldRequest": {"reason": "probe hold", "until": None},
        "AgentUpdatePreviewRequest": {"canary": 1, "waveSize": 5, "deadlineS": 120},
        "AgentUpdateRequest": {"canary": 1, "waveSize": 5, "deadlineS": 120, "expect": "0" * 16},
        "ScheduleChange": {"cron": "*/5 * * * *", "enabled": True},
        "ChannelWrite": {"name": "probe-channel-new", "url": "json://127.0.0.1:9/hook", "events": ["scan.drift"],
                         "enabled": True, "unreachableAfterS": 600},
        "HookPayload": {"action": "published", "release": {"tag_name": "v2"},
                        "repository": {"full_name": "acme/app"}},
    }
    assert op.body in bodies, f"{op.route}: no baseline body for schema {op.body!r} - add one to this test"
    return dict(bodies[op.body])


def api_probe(world: World, op: Op, klass: str, *, values: dict | None = None, query=(), body=None,
              content_type: str | None = "application/json", environ: dict | None = None, strict: bool = True,
              expect=INVALID, signed: bool = True, headers: dict | None = None) -> Probe:
    """A request to `op` with the admin token (or, for the CI webhook, a valid signature and a fresh delivery id)."""
    path_values = {**world.values(), **(values or {})}
    path = op.template
    for name in op.path_params():
        path = path.replace("{" + name + "}", H.url_segment(path_values[name]))
    if query:
        path += "?" + "&".join(f"{H.url_segment(k)}={H.url_segment(v)}" for k, v in query)
    data = body if isinstance(body, bytes) or body is None else H.to_json(body).encode("utf-8", "surrogatepass")
    hdrs, may_add = {}, {}
    if op.webhook:
        hdrs = webhook_headers(op.webhook, data or b"", f"probe-{next(world.deliveries)}", signed=signed)
        may_add = {"webhook_deliveries": {"status": "rejected"}} if signed else {}
    else:
        hdrs["Authorization"] = f"Bearer {world.token}"
    hdrs.update(headers or {})
    if op.template.startswith("/api/hooks/") and expect is not None:
        expect = HOOK_REFUSED
    return Probe("api", klass, op.route, op.method, path, data, content_type if data is not None else None, hdrs,
                 environ or {}, strict, frozenset(expect) if expect is not None else None, may_add)


def webhook_headers(scheme: str, body: bytes, delivery: str, *, signed: bool = True) -> dict:
    """Headers of a CI delivery of `body`, signed with the test secret as docs/api.md says (from the spec, not with
    the receiver's code): Standard Webhooks, or the earlier X-CCP-* scheme when the document still lists it."""
    key = WEBHOOK_SECRET.encode()
    if scheme == "standard":
        stamp = str(int(time.time()))
        mac = hmac.new(key, f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
        headers = {"webhook-id": delivery, "webhook-timestamp": stamp}
        if signed:
            headers["webhook-signature"] = "v1," + base64.b64encode(mac).decode()
        return headers
    headers = {"X-CCP-Delivery": delivery}
    if signed:
        headers["X-CCP-Signature"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    return headers


WEBHOOK_HOSTILE = {  # header -> hostile values, per scheme (header values are latin-1 on the wire)
    "standard": {
        "webhook-signature": ["v1," + "A" * 43 + "=", "v1,", "v2," + "A" * 43 + "=", "v1," + "\xe9" * 44, "v1,AAAA",
                              "v1," + "A" * 5000],
        "webhook-id": ["", "a" * 101, "a b", "a/b", "\xe9", "\x7f"],
        "webhook-timestamp": ["0", "-1", "1e309", str(2**64), "9" * 400, "\xb9", "1.5", "NaN"],
    },
    "legacy": {
        "X-CCP-Signature": ["sha256=" + "0" * 64, "sha256=", "md5=x", "sha256=" + "\xe9" * 64],
        "X-CCP-Delivery": ["", "a" * 101, "a b", "a/b", "\xe9", "\x7f"],
    },
}


def run(world: World, probe: Probe) -> list[Violation]:
    """Send `probe` through the test client and judge it (then put back whatever it changed)."""
    before = world.ledger.baseline
    client = world.client if probe.client == "main" else world.anon
    status, ctype, body, crash = None, None, b"", ""
    try:
        resp = client.open(probe.path, method=probe.method, data=probe.body, content_type=probe.content_type,
                           headers=probe.headers, environ_overrides=probe.environ or None)
        status, ctype, body = resp.status_code, resp.content_type, resp.get_data()
    except Exception as exc:  # noqa: BLE001 - the UI lets errors propagate in testing: that is a 500
        status, crash = 500, "raised " + summarize(exc)
    world.db.session.remove()
    return judge(world, probe, status, ctype, body, crash or world.errors.take(), before)


def judge(world: World, probe: Probe, status, ctype, body: bytes, crash: str, before) -> list[Violation]:
    """What is wrong with this answer to `probe`: a 5xx, an API error not in the documented shape, a refusal that
    changed something, hostile input accepted, a refusal with another status than documented."""
    after = world.ledger.snapshot()
    changes = world.ledger.changes(before, after, probe.may_add)
    out = []
    if status is None or status >= 500:
        out.append(Violation(probe, status, "5xx" if status else "no response", crash))
    refused = status is not None and 400 <= status < 500
    if probe.surface == "api" and status is not None and status >= 400:
        problem = error_shape_problem(status, body, ctype)
        if problem:
            out.append(Violation(probe, status, "error shape", problem))
    if refused and changes:
        out.append(Violation(probe, status, "refused but changed", "; ".join(changes)))
    if probe.strict and status is not None and status < 500:
        if status < 400 and (probe.surface == "api" or changes or probe.expect is not None):
            out.append(Violation(probe, status, "accepted hostile input", "; ".join(changes) or "no change"))
        elif refused and probe.expect is not None and status not in probe.expect:
            out.append(Violation(probe, status, f"status not in {sorted(probe.expect)}", _code(body)))
    if status is not None and status < 400 and any(c.startswith("instances") for c in changes):
        out += read_back(world, probe, before, after)
    world.ledger.settle(after)
    return out


def _code(body: bytes) -> str:
    match = re.search(rb'"code":\s*"([^"]+)"', body[:2000])
    return match.group(1).decode() if match else ""


def read_back(world: World, probe: Probe, before, after) -> list[Violation]:
    """An instance a probe created or changed must still be readable: API and UI pages, no credential shown."""
    out = []
    cols = world.ledger.columns["instances"]
    touched = [dict(zip(cols, row, strict=True)) for key, row in after.rows["instances"].items()
               if before.rows["instances"].get(key) != row]
    auth = {"Authorization": f"Bearer {world.token}"}
    for inst in touched:
        for path, headers in ((f"/api/instances/{inst['id']}", auth), ("/api/instances?per_page=100", auth),
                              ("/", {}), (f"/instances/{H.url_segment(inst['slug'])}/settings", {})):
            try:
                resp = world.client.get(path, headers=headers)
                status, text = resp.status_code, resp.get_data()
            except Exception as exc:  # noqa: BLE001
                status, text = 500, summarize(exc).encode()
            world.db.session.remove()
            detail = f"read back GET {path} -> {status}"
            if status >= 500:
                out.append(Violation(probe, status, "stored value breaks reads", f"{detail} {world.errors.take()}"))
            elif b":secret@" in text:
                out.append(Violation(probe, status, "credential shown", detail))
    return out


def check(world: World, probes: list[Probe]) -> None:
    violations = [v for probe in probes for v in run(world, probe)]
    assert not violations, group(violations)


# --- API catalogue --------------------------------------------------------------------------------------------------

def path_probes(world: World) -> list[Probe]:
    """Every path ref/id of every operation, two values of each class: non-ASCII digits and numbers, format marks,
    NUL and controls, ids past 2**31, odd number spellings, look-alike slugs."""
    probes, turn = [], itertools.count()
    for op in world.ops:
        body = baseline(op, world) if op.body else None
        for name, schema in op.path_params().items():
            classes = H.ID_CLASSES if schema.get("type") == "integer" else H.REF_CLASSES
            probes += [api_probe(world, op, f"path:{name}/{cls}", values={name: ref}, body=body, expect=REF_REFUSED)
                       for cls, ref in H.pick(classes, next(turn), per_class=2)]
    return probes


def query_probes(world: World) -> list[Probe]:
    """Unknown query parameters everywhere; hostile page/per_page; hostile audit filters; a Content-Length over the
    limit on every operation."""
    probes, turn = [], itertools.count()
    for op in world.ops:
        body = baseline(op, world) if op.body else None
        known = op.query_params()
        unknown = [kv for kv in H.UNKNOWN_QUERY if kv[0] not in known]
        n = next(turn)
        probes += [api_probe(world, op, "query:unknown", query=[unknown[(2 * n + i) % len(unknown)]], body=body,
                             expect={400}) for i in range(2)]
        for name in ("page", "per_page"):
            if name in known:
                probes += [api_probe(world, op, f"query:{name}/{cls}", query=[(name, v)], expect={400})
                           for cls, v in H.pick(H.PAGE_CLASSES, next(turn), per_class=2)]
        if "instance" in known:
            probes += [api_probe(world, op, f"query:instance/{cls}", query=[("instance", ref)], expect=REF_REFUSED)
                       for cls, ref in H.pick(H.REF_CLASSES, n, per_class=2)]
        if "actor" in known:
            probes += [api_probe(world, op, f"query:actor/{cls}", query=[("actor", v)], strict=False)
                       for cls, v in H.pick(H.STRING_CLASSES, n)]
        probes.append(api_probe(world, op, "framing:content-length-over-limit", body=b"{}",
                                environ={"CONTENT_LENGTH": str(2 * LIMIT)}, expect={413}))
    return probes


def body_probes(world: World) -> list[Probe]:
    """Whole hostile bodies (every one on every operation that takes a body), invalid UTF-8, unknown fields, and
    framing through the test client; for the CI webhook also hostile signing headers (401/400, not even a row)."""
    probes, turn = [], itertools.count()
    for op in (op for op in world.ops if op.body):
        base, n = baseline(op, world), next(turn)
        raw = H.to_json(base).encode()
        probes += [api_probe(world, op, f"body:{name}", body=H.Raw(text)) for name, text in H.HOSTILE_BODIES.items()]
        utf8 = list(H.INVALID_UTF8.items())
        probes += [api_probe(world, op, f"body:utf8-{name}", body=data) for name, data in
                   (utf8[(2 * n + i) % len(utf8)] for i in range(2))]
        unknown, ctypes = H.UNKNOWN_FIELDS, [c for c in H.BAD_CONTENT_TYPES if c]
        probes += [api_probe(world, op, "field:unknown", body={**base, unknown[(3 * n + i) % len(unknown)]: 1})
                   for i in range(3)]
        probes += [api_probe(world, op, "framing:content-type", body=raw, content_type=ct, expect={415})
                   for ct in (ctypes[(2 * n + i) % len(ctypes)] for i in range(2))]
        probes.append(api_probe(world, op, "framing:no-content-type", body=raw, content_type=None, expect={415}))
        if op.body_required:
            probes.append(api_probe(world, op, "framing:empty-body", body=b"", expect={400}))
        probes.append(api_probe(world, op, "framing:content-length-short", body=raw + b" " * 8,
                                environ={"CONTENT_LENGTH": str(max(len(raw) - 1, 1))}, expect=None))
        probes.append(api_probe(world, op, "framing:content-length-long", body=raw,
                                environ={"CONTENT_LENGTH": str(len(raw) + 100)}, expect=None))
        if op.webhook:
            probes += [api_probe(world, op, "webhook:unsigned", body=H.Raw(text), signed=False, expect={401})
                       for text in (H.DEEP_ARRAY, "null", H.to_json(base))]
            for header, values in WEBHOOK_HOSTILE[op.webhook].items():
                expect = {400, 401}  # 400 for an unusable id, 401 for a missing/malformed/wrong signature
                probes += [api_probe(world, op, f"webhook:{header}", body=base, expect=expect,
                                     headers={header: value}) for value in values]
    return probes


def field_values(name: str, schema: dict, turn: int) -> list[tuple[str, object, bool]]:
    """(input class, JSON value, strict) for one body field: a value of every wrong type, numbers out of range,
    hostile text of every class, and the same for array items and object keys/values."""
    strict = name in STRICT_FIELDS
    out = [(f"field:wrong-type/{kind}", H.Raw(text), True) for kind, text in H.wrong_values(schema, turn)]
    if "string" in H.json_types(schema):
        out += [(f"field:string/{cls}", v, strict) for cls, v in H.pick(H.STRING_CLASSES, turn)]
        if name in H.TRAILING_NEWLINE:
            out.append(("field:string/trailing-newline", H.TRAILING_NEWLINE[name], True))
        if name == "agent_url":
            out += [("field:string/url", url, True) for url in hostile_urls(turn)]
        if name == "plan":
            out += [("field:string/plan", v, True) for v in PLAN_STRINGS]
    if schema.get("type") == "array":
        items = schema.get("items", {})
        out += [(f"field:item-type/{kind}", [H.Raw(text)], True) for kind, text in H.wrong_values(items, turn)]
        out += [(f"field:item-string/{cls}", [v], strict) for cls, v in H.pick(H.STRING_CLASSES, turn + 1)]
        if name == "health_urls":
            out += [("field:item-string/url", [url], True) for url in hostile_urls(turn)]
        if schema.get("minItems"):
            out.append(("field:empty-array", [], True))
    if isinstance(schema.get("additionalProperties"), dict):
        values = schema["additionalProperties"]
        out += [(f"field:key/{cls}", {v: "x"}, True) for cls, v in H.pick(H.STRING_CLASSES, turn)]
        out += [(f"field:value/{cls}", {"GOOD_NAME": v}, False) for cls, v in H.pick(H.STRING_CLASSES, turn + 1)]
        out += [(f"field:value-type/{kind}", {"GOOD_NAME": H.Raw(t)}, True)
                for kind, t in H.wrong_values(values, turn)]
    return out


def hostile_urls(turn: int) -> list[str]:
    """The URLs with credentials every time (nothing secret in a URL), and three others in turn."""
    others = H.HOSTILE_URLS[2:]
    return [*H.HOSTILE_URLS[:2], *(others[(3 * turn + i) % len(others)] for i in range(3))]


def field_probes(world: World) -> list[Probe]:
    """Every field of every body (the rest of the body valid, so a value accepted by mistake really acts)."""
    probes, turn = [], itertools.count()
    for op in (op for op in world.ops if op.body):
        base = baseline(op, world)
        for name, schema in world.schemas[op.body].get("properties", {}).items():
            context = CONTEXT.get(name, {})
            start = {**base, **context} if op.body == "InstanceCreate" else (
                {**context} if op.body == "InstanceUpdate" else dict(base))
            start.pop(name, None)
            probes += [api_probe(world, op, f"{klass}:{name}", body={**start, name: value}, strict=strict,
                                 expect=INVALID if strict else None)
                       for klass, value, strict in field_values(name, schema, next(turn))]
    return probes


def test_api_refuses_hostile_input(world):
    """The catalogue: every input class on every operation of the OpenAPI document (path refs and ids, query
    parameters, whole bodies and framing, every field of every body)."""
    check(world, [*path_probes(world), *query_probes(world), *body_probes(world), *field_probes(world)])


def test_unicode_digit_ref_never_reaches_id_1(world):
    """`/api/instances/<U+0661>/quick-upgrade` must not start an upgrade on instance 1, nor act on any #1."""
    one = H.ARABIC_ONE
    by_route = {op.route: op for op in world.ops}
    probes = [api_probe(world, by_route["POST /api/instances/{ref}/quick-upgrade"], "path:ref", values={"ref": one},
                        body={}, expect=REF_REFUSED),
              api_probe(world, by_route["POST /api/upgrades/{upgrade_id}/cancel"], "path:upgrade_id",
                        values={"upgrade_id": one}, body={}, expect=REF_REFUSED),
              api_probe(world, by_route["POST /api/rollouts/{rollout_id}/cancel"], "path:rollout_id",
                        values={"rollout_id": one}, body={}, expect=REF_REFUSED)]
    probes += [ui_probe(world, form, "path", values={param: one}, expect=REF_REFUSED)
               for form in ui_forms(world) for param in form.params]
    check(world, probes)


# --- API: generated -------------------------------------------------------------------------------------------------

@st.composite
def generated_api_probe(draw, world: World) -> Probe:
    op = draw(st.sampled_from(world.ops))
    kinds = ["query"] + (["path"] if op.path_params() else []) + (
        ["deep", "wrong-type", "string", "number", "content-type"] if op.body else [])
    kind = draw(st.sampled_from(kinds))
    body = baseline(op, world) if op.body else None
    if kind == "path":
        name, schema = draw(st.sampled_from(sorted(op.path_params().items())))
        ref = draw(H.hostile_ref())
        return api_probe(world, op, f"path:{name}", values={name: ref}, body=body, expect=REF_REFUSED)
    if kind == "query":
        known = op.query_params()
        if "page" in known and draw(st.booleans()):
            param = draw(st.sampled_from(["page", "per_page"]))
            value = draw(st.one_of(H.huge_number().filter(lambda t: not H.within_bounds(t, known[param])),
                                   H.hostile_text(8)))
            return api_probe(world, op, f"query:{param}", query=[(param, value)], expect={400})
        key = draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in known))
        return api_probe(world, op, "query:unknown", query=[(key, draw(st.text(max_size=8)))], body=body,
                         expect={400})
    props = world.schemas[op.body].get("properties", {})
    if kind == "deep" or not props:
        deep = draw(H.deep_json())
        where = draw(st.sampled_from([None, *props]))
        return api_probe(world, op, "body:deep", body=H.Raw(deep) if where is None else {**body, where: H.Raw(deep)})
    if kind == "content-type":
        ctype = draw(st.one_of(st.sampled_from(H.BAD_CONTENT_TYPES[:-1]),
                               st.from_regex(r"(text|application)/[a-z]{1,8}", fullmatch=True)
                               .filter(lambda c: c != "application/json")))
        return api_probe(world, op, "framing:content-type", body=body, content_type=ctype, expect={415})
    name = draw(st.sampled_from(sorted(props)))
    schema = props[name]
    start = {**body, **CONTEXT.get(name, {})} if op.body == "InstanceCreate" else (
        dict(CONTEXT.get(name, {})) if op.body == "InstanceUpdate" else dict(body))
    if kind == "number" and "integer" in H.json_types(schema):
        number = draw(H.huge_number().filter(lambda t: not H.within_bounds(t, schema)))
        return api_probe(world, op, f"field:number:{name}", body={**start, name: H.Raw(number)})
    if kind == "string" and "string" in H.json_types(schema) and name in STRICT_FIELDS:
        return api_probe(world, op, f"field:string:{name}", body={**start, name: draw(H.hostile_text())})
    return api_probe(world, op, f"field:wrong-type:{name}", body={**start, name: H.Raw(draw(H.wrong_typed(schema)))})


@HYPOTHESIS
@given(data=st.data())
def test_api_generated_hostile_input(world, data):
    probe = data.draw(generated_api_probe(world), label="probe")
    violations = run(world, probe)
    assert not violations, group(violations)


# --- UI forms -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UiForm:
    endpoint: str
    template: str  # with {slug}, {upgrade_id}, {rollout_id}, {token_id}
    fields: dict
    anonymous: bool = False

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.template)


def ui_forms(world: World) -> list[UiForm]:
    """Every HTML POST route with a valid baseline (the test fails when a new form has none)."""
    instance = {"name": "Tenant probe", "domain": "probe-ui.example.test", "driver": "local", "agent_url": "",
                "agent_key_id": "", "agent_key": "", "install_dir": "/tmp/ccp-hostile/probe-ui",
                "compose_project": "", "image_tag": "v1", "template_set": "default", "health_urls": "", "vars": ""}
    receiver = {"image": "127.0.0.1:9/acme/app", "repository": "acme/app", "instances": world.slug,
                "semver_range": "^1", "tag_include": "", "tag_exclude": "", "min_age_s": "60", "canary": "1",
                "wave_size": "5", "registry_username": "", "registry_password": ""}
    forms = [
        UiForm("auth.login", "/login", {"username": "nobody", "password": "not the password"}, anonymous=True),
        UiForm("auth.logout", "/logout", {}),
        UiForm("fleet.new_instance", "/instances/new", {**instance, "slug": "probe-ui"}),
        UiForm("enroll.probe", "/instances/new/probe", {"slug": "probe-ui", "agent_url": "http://127.0.0.1:9",
                                                        "agent_key_id": "ccp-test", "agent_key": "k" * 32}),
        UiForm("instances.update", "/instances/{slug}/settings",
               {**instance, "name": "Tenant prov-1", "domain": "prov-1.example.test", "compose_project": "prov1",
                "install_dir": world.install_dir}),
        UiForm("releases.preview", "/instances/{slug}/release/preview", {"tag": "v2"}),
        UiForm("releases.apply", "/instances/{slug}/release/apply", {"tag": "v2", "plan": "0" * 64}),
        UiForm("releases.quick_upgrade", "/instances/{slug}/quick-upgrade", {}),
        UiForm("releases.upgrade_now", "/instances/{slug}/upgrade-now", {}),
        UiForm("upgrades.cancel", "/upgrades/{upgrade_id}/cancel", {}),
        UiForm("instances.set_window", "/instances/{slug}/window",
               {"cron": "0 2 * * *", "minutes": "120", "timezone": "Europe/Berlin"}),
        UiForm("instances.clear_window", "/instances/{slug}/window/clear", {}),
        UiForm("instances.set_hold", "/instances/{slug}/hold", {"reason": "probe hold", "until": ""}),
        UiForm("instances.release_hold", "/instances/{slug}/hold/release", {}),
        UiForm("upgrades.restore", "/upgrades/{upgrade_id}/restore", {"confirm": "1"}),
        UiForm("rollouts.preview", "/rollouts/preview",
               {"tag": "v2", "canary": "1", "waveSize": "5", "instances": world.slug}),
        UiForm("rollouts.start", "/rollouts",
               {"tag": "v2", "canary": "1", "waveSize": "5", "instances": world.slug, "expect": "0" * 64}),
        UiForm("rollouts.cancel", "/rollouts/{rollout_id}/cancel", {}),
        UiForm("rollbacks.apply", "/instances/{slug}/releases/{upgrade_id}/rollback", {"plan": "0" * 64}),
        UiForm("rollbacks.rollout_start", "/rollouts/{rollout_id}/rollback",
               {"canary": "1", "waveSize": "5", "expect": "0" * 64}),
        UiForm("admin.create", "/admin/tokens", {"name": "probe token", "scope": "read", "expires_days": "30"}),
        UiForm("admin.revoke", "/admin/tokens/{token_id}/revoke", {}),
        UiForm("receivers.create", "/receivers", {**receiver, "name": "probe-ui-hook", "kind": "gitea", "secret": ""}),
        UiForm("receivers.update", "/receivers/{name}", {**receiver, "enabled": "on"}),
        UiForm("receivers.toggle", "/receivers/{name}/toggle", {}),
        UiForm("receivers.rotate", "/receivers/{name}/rotate", {}),
        UiForm("receivers.replay", "/deliveries/{delivery_id}/replay", {}),
        UiForm("fleet.scan", "/fleet/scan", {}),
        UiForm("fleet.scan_instance", "/instances/{slug}/scan", {}),
        UiForm("notify_admin.update_schedule", "/admin/schedules/{kind}", {"cron": "*/5 * * * *", "enabled": "on"}),
        UiForm("notify_admin.run_schedule", "/admin/schedules/{kind}/run", {}),
        UiForm("notify_admin.create_channel", "/admin/channels",
               {"name": "probe-ui-channel", "url": "json://127.0.0.1:9/hook", "events": "scan.drift",
                "unreachable_after_min": "30"}),
        UiForm("notify_admin.test_channel", "/admin/channels/{channel_id}/test", {}),
        UiForm("notify_admin.toggle_channel", "/admin/channels/{channel_id}/enabled", {"enabled": "on"}),
        UiForm("notify_admin.delete_channel", "/admin/channels/{channel_id}/delete", {}),
        UiForm("agent_updates.preview", "/admin/agents/preview", {"canary": "1", "wave_size": "5", "deadline_s": "120"}),
        UiForm("agent_updates.start", "/admin/agents/updates",
               {"canary": "1", "wave_size": "5", "deadline_s": "120", "expect": "0" * 16}),
        UiForm("agent_updates.cancel", "/admin/agents/updates/{rollout_id}/cancel", {}),
    ]
    posts = {rule.endpoint for rule in world.app.url_map.iter_rules()
             if "POST" in (rule.methods or ()) and not rule.rule.startswith(("/api", "/metrics", "/static"))}
    missing = posts - {f.endpoint for f in forms}
    assert not missing, f"UI forms without a hostile-input baseline in this test: {sorted(missing)}"
    return forms


def ui_probe(world: World, form: UiForm, klass: str, *, values: dict | None = None, fields: dict | None = None,
             strict: bool = True, expect=None, csrf: str | None = None, htmx: bool = False) -> Probe:
    """A form post as a browser sends it (urlencoded; the page's CSRF token as a field), optionally as htmx."""
    path_values = {**world.values(), **(values or {})}
    path = form.template
    for name in form.params:
        path = path.replace("{" + name + "}", H.url_segment(path_values[name]))
    valid = world.anon_csrf if form.anonymous else world.csrf
    data = {**form.fields, **(fields or {}), "csrf_token": valid if csrf is None else csrf}
    body = "&".join(f"{H.url_segment(k)}={H.url_segment(str(v))}" for k, v in data.items()).encode()
    headers = {}
    if htmx:  # as static/ccp.js sends it; a hostile token travels in the form field alone
        headers = {"HX-Request": "true", **({"X-CSRFToken": valid} if csrf is None else {})}
    if form.anonymous:  # a log-in attempt with any of these fields can only fail, and must change nothing
        strict, expect = True, expect or {400, 401, 429}
    return Probe("ui", klass, f"POST {form.template}", "POST", path, body, "application/x-www-form-urlencoded",
                 headers, {}, strict, frozenset(expect) if expect is not None else None, {},
                 "anon" if form.anonymous else "main")


# The UI strips surrounding whitespace from fields, as it should: leave out values that only differ by it.
UI_STRING_CLASSES = {cls: [v for v in values if v == v.strip()] for cls, values in H.STRING_CLASSES.items()}
# (and 0, which "Expires after (days, 0 = never)" rightly takes)
UI_NUMBER_CLASSES = {cls: [v for v in values if v and v == v.strip() and v not in ("0", "-0")]
                     for cls, values in H.PAGE_CLASSES.items()}
UI_REMOTE = {"driver": "remote", "agent_url": "http://127.0.0.1:9", "agent_key_id": "ccp", "agent_key": "k" * 32}


def ui_field_values(name: str, turn: int) -> list[tuple[str, str, bool]]:
    """(input class, form value, strict) for one form field."""
    if name in NUMBER_FIELDS:
        return [(f"field:number/{cls}", v, True) for cls, v in H.pick(UI_NUMBER_CLASSES, turn, per_class=2)]
    strings = H.pick(UI_STRING_CLASSES, turn)
    if name == "vars":
        return [(f"field:var-name/{cls}", f"{v}=x", True) for cls, v in strings] + [
            (f"field:var-value/{cls}", f"GOOD_NAME={v}", False) for cls, v in H.pick(UI_STRING_CLASSES, turn + 1)]
    out = [(f"field:string/{cls}", v, name in STRICT_FIELDS) for cls, v in strings]
    if name in ("agent_url", "health_urls"):
        out += [("field:string/url", url, True) for url in hostile_urls(turn)]
    if name == "plan":
        out += [("field:string/plan", v, True) for v in PLAN_STRINGS]
    return out


def ui_catalogue(world: World) -> list[Probe]:
    probes, turn = [], itertools.count()
    csrf_values = ["", H.ARABIC_ONE, "\x00", "x" * 5000, "\ud800", world.csrf[::-1]]
    for n, form in enumerate(ui_forms(world)):
        for param in form.params:
            classes = H.REF_CLASSES if param == "slug" else H.ID_CLASSES
            probes += [ui_probe(world, form, f"path:{param}/{cls}", values={param: ref}, expect=REF_REFUSED,
                                htmx=i % 2 == 0) for i, (cls, ref) in enumerate(H.pick(classes, next(turn)))]
        probes += [ui_probe(world, form, "csrf", csrf=csrf_values[(2 * n + i) % len(csrf_values)],
                            expect={400, 403}) for i in range(2)]
        for name in form.fields:
            context = UI_REMOTE if name.startswith("agent_") else {}
            probes += [ui_probe(world, form, f"{klass}:{name}", fields={**context, name: value}, strict=strict,
                                htmx=(n + i) % 2 == 0)
                       for i, (klass, value, strict) in enumerate(ui_field_values(name, next(turn)))]
    return probes


def test_ui_forms_refuse_hostile_input(world):
    """The catalogue: hostile path refs, CSRF tokens and every field of every HTML form."""
    check(world, ui_catalogue(world))


@st.composite
def generated_ui_probe(draw, world: World) -> Probe:
    form = draw(st.sampled_from(ui_forms(world)))
    htmx = draw(st.booleans())
    if form.params and draw(st.booleans()):
        param = draw(st.sampled_from(form.params))
        ref = draw(H.hostile_ref())
        return ui_probe(world, form, f"path:{param}", values={param: ref}, expect=REF_REFUSED, htmx=htmx)
    if not form.fields:
        return ui_probe(world, form, "csrf", csrf=draw(H.hostile_text(20)), expect={400, 403}, htmx=htmx)
    name = draw(st.sampled_from(sorted(form.fields)))
    value = draw(H.huge_number().filter(lambda v: v not in ("0", "-0")) if name in NUMBER_FIELDS
                 else H.hostile_text().filter(lambda v: v == v.strip()))
    context = UI_REMOTE if name.startswith("agent_") else {}
    return ui_probe(world, form, f"field:{name}", fields={**context, name: value},
                    strict=name in STRICT_FIELDS or form.anonymous, htmx=htmx)


@HYPOTHESIS
@given(data=st.data())
def test_ui_generated_hostile_input(world, data):
    probe = data.draw(generated_ui_probe(world), label="probe")
    violations = run(world, probe)
    assert not violations, group(violations)


# --- framing on a real HTTP server ----------------------------------------------------------------------------------

def test_framing_on_a_real_server(world):
    """On a real HTTP server (Werkzeug's, as `flask run`; gunicorn hands the app chunked bodies the same way, with
    wsgi.input_terminated and no CONTENT_LENGTH): a chunked body over the 1 MiB limit gets 413 and does nothing, on
    every operation - also with a small Content-Length beside it; a Content-Length that lies or does not parse is
    refused and does nothing."""
    violations = []
    by_route = {op.route: op for op in world.ops}
    with serve(world.app) as port:
        def send(op: Op, klass: str, payload: bytes, wire: list[bytes], headers: dict, expect):
            probe = api_probe(world, op, klass, body=payload, expect=expect)
            probe.body = payload[:300]  # (for the report)
            probe.headers = {**probe.headers, **headers}
            resp = raw_request(port, op.method, probe.path, {**probe.headers, "Content-Type": "application/json"},
                               wire)
            world.db.session.remove()
            violations.extend(judge(world, probe, resp.status, resp.content_type, resp.body,
                                    resp.error or world.errors.take(), world.ledger.baseline))

        for op in world.ops:
            big = big_body(op, world)
            send(op, "framing:chunked-over-limit", big, chunked(big), {"Transfer-Encoding": "chunked"}, {413})
        patch = by_route["PATCH /api/instances/{ref}"]
        big = big_body(patch, world)
        send(patch, "framing:chunked-with-content-length", big, chunked(big),
             {"Transfer-Encoding": "chunked", "Content-Length": "2"}, {413})
        body = b'{"name": "Renamed by a probe"}'
        for value in ("abc", "-1", "1e3", "+30", "0x1e", "30, 30", "99999999999999999999999"):
            send(patch, "framing:content-length-invalid", body, [body], {"Content-Length": value}, None)
        send(patch, "framing:content-length-long", body, [body], {"Content-Length": str(len(body) + 50)}, None)
    assert not violations, group(violations)


def big_body(op: Op, world: World) -> bytes:
    """A body over the limit that would act if it were read, even only up to the limit: the valid baseline, then
    JSON whitespace (a reader that silently stops at 1 MiB still parses the object)."""
    base = H.to_json(baseline(op, world)).encode() if op.body else b"{}"
    return base + b" " * (LIMIT + 64 * 1024)
