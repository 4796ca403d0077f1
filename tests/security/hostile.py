"""Hostile input and the harness that sends it, for tests/security/test_hostile_input.py.

Input: a catalogue of each hostile input class (dicts of named lists; `pick` rotates through them so every value is
sent somewhere and every class reaches every route and field), hypothesis strategies that generate more of the same,
and JSON text built by hand (`Raw`, `to_json`: `1e309`, `-0` or a 400-digit number reach the server as written, and
lone surrogates travel as `\\ud800` escapes). Every value in the "strict" lists is invalid for *every* strict field it
is used in (slug, tag, plan, driver, URLs, key ids, compose project, template set, install dir, var/secret names,
bounded numbers): each starts with a character no such field allows (so it is never an absolute path or a valid
identifier either), or breaks a length cap.

Harness:
- `Probe`: one request and what its refusal must look like (status set, JSON error shape for the API).
- `Ledger`: every row of every table plus the RQ queue; a refused request must change none of it (no row, no changed
  row, no audit entry, no job). After a probe that changed something (accepted, or a defect) the ledger puts the
  baseline back, so every probe - and every hypothesis replay - starts from the same state.
- `ErrorLog`: exceptions CCP logged (the API's 500 handler), for a one-line traceback summary.
- `serve` / `raw_request`: a real Werkzeug HTTP server on 127.0.0.1 and a raw socket client, for framing only a
  server's HTTP parser sees (chunked bodies, Content-Length that lies).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

import sqlalchemy as sa
from hypothesis import strategies as st

# --- path refs (documented: a slug [a-z0-9][a-z0-9-]{0,62} or an ASCII numeric id) -----------------------------------
ARABIC_ONE = "\u0661"  # '١' ARABIC-INDIC DIGIT ONE: str.isdigit() and int() accept it as 1
REF_CLASSES = {
    "unicode-digit": [ARABIC_ONE, "\uff11", "\u0661\u0662", "\uff12\uff13", "\u0967", "\u09e7", "\U0001d7d9",
                      "\u0662"],  # Nd: Werkzeug's <int> converter and int() take them
    "unicode-number": ["\u00b2", "\u2460", "\u00b9", "\u2469"],  # No: isdigit() is True, int() raises
    "format-char": ["\u200f1", "1\u200e", "\u202e1", "1\u200b", "\ufeff1", "prov\u200b-1", "prov-1\u200f"],
    "nul-control": ["1\x00", "\x00", "prov-1\x00", "1\n", "prov-1\n", "\t1"],
    "huge-id": [str(2**31), str(2**31 + 1), str(2**32), str(2**63), str(2**64), "1" + "0" * 400, "9" * 4300,
                "9" * 5000],
    "odd-number": ["-0", "-1", "0", "+1", "1e309", "1.0", "0x1", " 1", "1 ", "1_0", "Infinity", "NaN"],
    "look-alike": ["PROV-1", "\uff50rov-1", "pr\u043ev-1", "prov_1", "-prov-1", "a" * 64, "a" * 5000, ".", "..",
                   "prov-1/..", "%2e%2e", "a b"],
}
ID_CLASSES = {k: v for k, v in REF_CLASSES.items() if k != "look-alike"}
HOSTILE_REFS = [r for refs in REF_CLASSES.values() for r in refs]

# --- query values ------------------------------------------------------------------------------------------------
PAGE_CLASSES = {
    "unicode-digit": REF_CLASSES["unicode-digit"][:4] + REF_CLASSES["unicode-number"][:2],
    "huge-number": ["1e309", str(2**64), "1" + "0" * 400, "9" * 5000, str(2**31)],
    "odd-number": ["-0", "0", "-1", "", " 1", "1 ", "1_0", "0x10", "1.0", "NaN"],
    "nul-control": ["\x00", "1\x00", "1\n"],
    "wrong-type": ["[]", "true", "null", "x"],
}
UNKNOWN_QUERY = [("foo", "1"), ("Page", "1"), ("page[]", "1"), ("per-page", "5"), ("\u2460", "1"), ("\x00", "1"),
                 ("q", "x" * 5000), ("instance", "1"), ("_", "")]

# --- string fields --------------------------------------------------------------------------------------------------
STRING_CLASSES = {  # invalid for every strict field (see the module docstring)
    "unicode-digit": [ARABIC_ONE, "\u00b2", "\u2460", "\uff11\uff12", "\u0661.\u0662", "\uff56\uff12"],
    "rtl-mark": ["\u200fv2", "\u202ev2", "\ufeffv2"],
    "nul": ["\x00", "\x00v2", "\x00" * 3],
    "surrogate": ["\ud800", "\udfff", "\ud800v2"],  # lone surrogates (JSON escapes; CESU bytes in forms)
    "control": ["\nv2", "\tv2", " v2", "\x7fv2", "\x1bv2"],
    "very-long": ["x" * 100_000, "\u0661" * 20_000, "\u00e9" * 129],  # 100 KB; 40 KB of UTF-8; 129 characters
}
HOSTILE_STRINGS = [s for values in STRING_CLASSES.values() for s in values]
TRAILING_NEWLINE = {  # valid values plus "\n": a `^...$` regex (re.match) lets them through
    "slug": "hostile-nl\n", "compose_project": "hostilenl\n", "imageTag": "v2\n", "image_tag": "v2\n",
    "tag": "v2\n", "plan": "0" * 64 + "\n", "agent_key_id": "ccp\n", "domain": "hostile.example.test\n",
    "driver": "local\n", "template_set": "default\n",
}
HOSTILE_URLS = [  # strict values for agent_url and health_urls items
    "http://user:secret@agent.example.test:7000/",  # credentials in the URL (DESIGN: nothing secret in a URL)
    "http://:secret@agent.example.test/", "http://agent.example.test:99999/", "http://agent.example.test:-1/",
    "http://[::1/", "http://\u0661.example.test/", "http://agent.example.test/\x00", "javascript:alert(1)",
    "file:///etc/passwd", "http://", "http:///x", "http://agent.example.test/" + "a" * 5000,
]


def pick(classes: dict[str, list], turn: int, per_class: int = 1) -> list[tuple[str, object]]:
    """(class, value) pairs: `per_class` values of every class, rotating with `turn` (a route or field counter), so
    a catalogue that calls this once per route/field sends every value somewhere and every class everywhere."""
    return [(name, values[(turn * per_class + i) % len(values)]) for name, values in classes.items()
            for i in range(min(per_class, len(values)))]


# --- JSON numbers, as text ------------------------------------------------------------------------------------------
HUGE_NUMBERS = ["1e309", "-1e309", "-0", "0", "-1", str(2**64), str(2**63), str(2**31), "1" + "0" * 400,
                "1.5", "-0.0", "1E400"]  # (not 1e2: JSON Schema counts it as the integer 100)

# --- whole bodies ---------------------------------------------------------------------------------------------------
DEEP_ARRAY = "[" * 5000 + "]" * 5000  # 10 KB
DEEP_OBJECT = '{"a":' * 2000 + "1" + "}" * 2000  # 12 KB
DEEP_MIXED = '[{"a":' * 1000 + "1" + "}]" * 1000
HOSTILE_BODIES = {
    "null": "null", "array": "[]", "string": '"x"', "number": "1", "true": "true", "huge-number": "1" + "0" * 400,
    "inf": "1e309", "deep-array": DEEP_ARRAY, "deep-object": DEEP_OBJECT, "deep-mixed": DEEP_MIXED,
    "not-json": "{'a': 1}", "trailing-garbage": "{}x", "two-values": "{}{}", "nan": '{"a": NaN}',
    "unterminated": '{"a": "', "surrogate-key": '{"\\ud800": 1}',
}
INVALID_UTF8 = {"latin1": b'{"name": "\xe9"}', "ff": b"\xff\xfe{}", "overlong": b'{"a": "\xc0\xae"}',
                "cesu-surrogate": b'{"a": "\xed\xa0\x80"}'}
UNKNOWN_FIELDS = ["zzz", "\u2460", "\x00", "\ud800", "IMAGETAG", "imageTag\u200b", "x" * 5000, ""]

# --- wrong types: every JSON type, as text --------------------------------------------------------------------------
TYPED_VALUES = {
    "null": ["null"], "boolean": ["true", "false"], "integer": ["0", "-0", str(2**64), "1" + "0" * 400],
    "number": ["1.5", "1e309", "-1e309"], "string": ['""', '"1"', '"\\u0661"'], "array": ["[]", '["x"]', DEEP_ARRAY],
    "object": ["{}", '{"a": 1}', DEEP_OBJECT],
}

BAD_CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/xml", "application/jsonx", "json", None]


@dataclass(frozen=True)
class Raw:
    """A JSON value given as its exact text (a number too big for a float, a deep nest...)."""

    text: str


def to_json(value) -> str:
    """JSON text for `value`: dicts, lists and scalars as json.dumps (ASCII, so lone surrogates become escapes), Raw
    pieces verbatim."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


def url_segment(text: str) -> str:
    """Percent-encode any text (lone surrogates included, as their CESU bytes) for one path segment or query value."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def json_types(schema: dict) -> set[str]:
    """The JSON types a (resolved) schema admits; an enum of strings admits strings."""
    if "enum" in schema:
        return {"string"} if all(isinstance(v, str) for v in schema["enum"]) else set(TYPED_VALUES)
    kind = schema.get("type")
    if kind is None:
        return set(TYPED_VALUES)
    kinds = {kind} if isinstance(kind, str) else set(kind)
    if "number" in kinds:
        kinds.add("integer")
    return kinds


def wrong_values(schema: dict, turn: int | None = None) -> list[tuple[str, str]]:
    """(JSON type or "out-of-range", JSON text) of values `schema` does not admit: a type it does not allow, or for
    a bounded integer a number outside the bounds. With `turn`, one value per type (rotating) and three numbers."""
    allowed = json_types(schema)
    kinds = {kind: texts for kind, texts in TYPED_VALUES.items() if kind not in allowed}
    if "integer" in allowed:
        kinds["out-of-range"] = [n for n in HUGE_NUMBERS if not within_bounds(n, schema)]
    if turn is None:
        return [(kind, text) for kind, texts in kinds.items() for text in texts]
    return pick({k: v for k, v in kinds.items() if v}, turn, per_class=1) + (
        pick({"out-of-range": kinds["out-of-range"]}, turn + 1, per_class=2) if kinds.get("out-of-range") else [])


def within_bounds(text: str, schema: dict) -> bool:
    """True when the JSON number `text` is an integer inside the schema's documented bounds (a valid value)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return schema.get("minimum", -(10**500)) <= value <= schema.get("maximum", 10**500)


# --- hypothesis strategies ------------------------------------------------------------------------------------------
_HOSTILE_FIRST = st.one_of(
    st.characters(categories=["Nd"]).filter(lambda c: not c.isascii()),  # non-ASCII decimal digits
    st.characters(categories=["No", "Cf", "Cs", "Co", "Zl", "Zp"]),  # other numbers, format, surrogates, private
    st.characters(min_codepoint=0, max_codepoint=0x1F),  # C0 controls (NUL included)
    st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),  # fullwidth ASCII
)


def hostile_text(max_size: int = 30) -> st.SearchStrategy[str]:
    """Text that starts with a character no strict field accepts, followed by anything."""
    return st.builds(lambda first, rest: first + rest, _HOSTILE_FIRST, st.text(max_size=max_size))


def hostile_ref() -> st.SearchStrategy[str]:
    """A path ref outside the documented pattern: non-ASCII digits, digits past 2**31, or hostile text."""
    return st.one_of(
        st.sampled_from(HOSTILE_REFS),
        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6).filter(lambda s: not s.isascii()),
        st.integers(min_value=2**31, max_value=10**400).map(str),
        st.integers(max_value=0).map(str),
        hostile_text(10).filter(lambda s: "/" not in s),
    )


def huge_number() -> st.SearchStrategy[str]:
    """A JSON number (as text) outside every documented bound: huge, negative, zero or fractional."""
    return st.one_of(
        st.sampled_from(HUGE_NUMBERS),
        st.integers(min_value=10**6, max_value=10**400).map(str),  # past every bound (waves 1000, token days 3650)
        st.integers(max_value=0).map(str),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()).map(repr),
        st.integers(min_value=309, max_value=100_000).map(lambda e: f"1e{e}"),
    )


def deep_json() -> st.SearchStrategy[str]:
    """A nested JSON document 1,000-6,000 levels deep (arrays, objects or both)."""
    def build(depth: int, kind: int) -> str:
        opener, closer = [("[", "]"), ('{"a":', "}"), ('[{"a":', "}]")][kind]
        return opener * depth + ("1" if kind else "") + closer * depth

    return st.builds(build, st.integers(min_value=1000, max_value=6000), st.integers(min_value=0, max_value=2))


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10))
ANY_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                                inner, max_size=3),
                        max_leaves=8)


def wrong_typed(schema: dict) -> st.SearchStrategy[str]:
    """JSON text of a value whose type `schema` does not admit (or a number outside its bounds)."""
    allowed = json_types(schema)

    def kind(value) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "integer"
        return {float: "number", str: "string", list: "array", dict: "object"}[type(value)]

    generated = ANY_JSON.filter(lambda v: kind(v) not in allowed and not (kind(v) == "number" and "integer" in allowed
                                                                           and float(v).is_integer())).map(to_json)
    listed = [text for _, text in wrong_values(schema)]
    return st.one_of(st.sampled_from(listed), generated) if listed else generated


# --- the harness ---------------------------------------------------------------------------------------------------

TABLES = ("instances", "upgrades", "upgrade_steps", "rollouts", "audit_events", "webhook_deliveries", "api_tokens",
          "users", "scan_runs", "scan_schedules", "notification_channels")
VOLATILE = {"api_tokens": {"last_used_at"}}  # refreshed on use at most once a minute: not a change made by a probe
API_REFUSAL = frozenset({400, 401, 403, 404, 405, 409, 413, 415, 422, 429})


@dataclass
class Probe:
    """One hostile request. `strict`: the input is invalid and must be refused (API: a status in `expect`, else any
    4xx; UI: a 4xx in `expect`, or a 200/3xx re-render that changed nothing). Either way, a refusal changes nothing
    except `may_add` (table -> column values of the one row it may add: a signed webhook delivery is kept)."""

    surface: str  # "api" or "ui"
    klass: str  # input class, e.g. "path-ref", "body:deep-array"
    route: str  # route template, for grouping the report
    method: str
    path: str  # percent-encoded
    body: bytes | None = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)
    environ: dict = field(default_factory=dict)
    strict: bool = True
    expect: frozenset | None = None
    may_add: dict = field(default_factory=dict)
    client: str = "main"  # "main" (admin session + token) or "anon" (the login form)

    def describe(self) -> str:
        body = "" if self.body is None else f" body={_excerpt(self.body)}"
        ctype = "" if self.content_type is None else f" content-type={self.content_type!r}"
        extra = "".join(f" {k}={_excerpt(str(v).encode())}" for k, v in self.environ.items())
        return f"{self.method} {_excerpt(self.path.encode(), 160)}{ctype}{body}{extra}"


@dataclass
class Violation:
    probe: Probe
    status: int | None
    problem: str
    detail: str = ""

    def line(self) -> str:
        tail = f" [{self.detail}]" if self.detail else ""
        return f"{self.problem}: {self.probe.describe()} -> {self.status}{tail}"


def _excerpt(data: bytes, limit: int = 100) -> str:
    text = data.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= limit else f"{text[:limit // 2]}...({len(data)} bytes)...{text[-20:]}")


@dataclass(frozen=True)
class State:
    rows: dict  # table -> {primary key: row tuple, volatile columns as None}
    full: dict  # table -> [row tuple] (everything, to restore)
    jobs: tuple  # job ids in the app's queue


class Ledger:
    """Rows of every table and the queue's jobs; what a probe changed; putting it all back.

    `baseline` is the state every probe starts from: after a probe that changed anything, `settle` restores it."""

    def __init__(self, db, queues) -> None:
        self.db, self.queues = db, queues  # queues(): every RQ queue CCP enqueues on
        self.tables = [t for t in db.metadata.sorted_tables if t.name in TABLES]
        missing = set(TABLES) - {t.name for t in self.tables}
        assert not missing, f"tables missing from the models: {missing}"
        self.columns = {t.name: [c.name for c in t.columns] for t in self.tables}
        self.baseline = self.snapshot()

    def snapshot(self) -> State:
        rows, full = {}, {}
        with self.db.engine.connect() as conn:
            for table in self.tables:
                names = self.columns[table.name]
                pk = [names.index(c.name) for c in table.primary_key.columns]
                volatile = [names.index(c) for c in VOLATILE.get(table.name, ())]
                raw = [tuple(r) for r in conn.execute(sa.select(table))]
                full[table.name] = raw
                rows[table.name] = {tuple(r[i] for i in pk): tuple(None if i in volatile else v
                                                                    for i, v in enumerate(r)) for r in raw}
        return State(rows, full, tuple(job_id for queue in self.queues() for job_id in queue.get_job_ids()))

    def changes(self, before: State, after: State, may_add: dict | None = None) -> list[str]:
        """What changed, in words ('audit_events +1 (action=upgrade.start.quick, ...)'); allowed additions
        (`may_add`: at most one row per table, with these column values) are left out."""
        out = []
        for name in TABLES:
            cols = self.columns[name]
            old, new = before.rows[name], after.rows[name]
            added = [dict(zip(cols, new[k], strict=True)) for k in sorted(new.keys() - old.keys())]
            allowed = (may_add or {}).get(name)
            if allowed is not None and len(added) == 1 and all(added[0].get(k) == v for k, v in allowed.items()):
                added = []
            removed = old.keys() - new.keys()
            changed = [k for k in old.keys() & new.keys() if old[k] != new[k]]
            if added:
                out.append(f"{name} +{len(added)} ({_row_summary(name, added[0])})")
            if removed:
                out.append(f"{name} -{len(removed)} (ids {sorted(removed)[:3]})")
            for key in sorted(changed)[:3]:
                diff = [c for c, v, w in zip(cols, old[key], new[key], strict=True) if v != w]
                out.append(f"{name} row {key[0] if len(key) == 1 else key} changed: {', '.join(diff)}")
        new_jobs = set(after.jobs) - set(before.jobs)
        if new_jobs:
            out.append(f"queue +{len(new_jobs)} job(s)")
        if len(after.jobs) < len(before.jobs):
            out.append(f"queue -{len(before.jobs) - len(after.jobs)} job(s)")
        return out

    def settle(self, after: State) -> None:
        """After a probe: if anything differs from the baseline, put the baseline back (and take it again: a
        cancelled RQ job cannot be put back, so the queue part of the baseline follows what is left)."""
        if after.rows != self.baseline.rows or after.jobs != self.baseline.jobs:
            self.restore(self.baseline)
            self.baseline = self.snapshot()

    def restore(self, state: State) -> None:
        """Put every table back as `state` had it (delete all, insert all: small tables) and drop jobs added since."""
        self.db.session.remove()
        with self.db.engine.begin() as conn:
            for table in reversed(self.tables):
                conn.execute(table.delete())
            for table in self.tables:
                if state.full[table.name]:
                    cols = self.columns[table.name]
                    conn.execute(table.insert(), [dict(zip(cols, r, strict=True)) for r in state.full[table.name]])
        from rq.job import Job

        for queue in self.queues():
            for job_id in set(queue.get_job_ids()) - set(state.jobs):
                try:
                    Job.fetch(job_id, connection=queue.connection).delete()
                except Exception:  # noqa: BLE001 - already gone
                    queue.remove(job_id)


def _row_summary(table: str, values: dict) -> str:
    keys = {"audit_events": ("action", "result", "actor"), "upgrades": ("kind", "status", "instance_id"),
            "instances": ("slug", "name"), "rollouts": ("tag", "status"), "api_tokens": ("name", "scope"),
            "webhook_deliveries": ("delivery_id", "status")}.get(table, ("id",))
    return ", ".join(f"{k}={_short(values.get(k))}" for k in keys)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class ErrorLog(logging.Handler):
    """Collects log records that carry an exception (the app logs its 500s), for traceback summaries."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.records.append(record)

    def take(self) -> str:
        found = [summarize(r.exc_info[1]) for r in self.records]
        self.records.clear()
        return " | ".join(dict.fromkeys(found))

    @classmethod
    @contextmanager
    def installed(cls):
        """Collect what CCP's loggers record (instead of printing thousands of RecursionError frames), with those
        loggers switched back on: migrations/env.py runs alembic's fileConfig, which disables every logger that
        existed before it - in the test process, all of CCP's."""
        handler = cls()
        ccp = logging.getLogger("ccp")
        silenced = [lg for name, lg in logging.Logger.manager.loggerDict.items()
                    if isinstance(lg, logging.Logger) and name.split(".")[0] == "ccp" and lg.disabled]
        for lg in silenced:
            lg.disabled = False
        ccp.addHandler(handler)
        propagate, ccp.propagate = ccp.propagate, False
        try:
            yield handler
        finally:
            ccp.removeHandler(handler)
            ccp.propagate = propagate
            for lg in silenced:
                lg.disabled = True


def summarize(exc: BaseException) -> str:
    """'RecursionError: maximum recursion depth exceeded at ccp/api/base.py:67 in json_body' (innermost CCP frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/ccp/" in f.filename and "/tests/" not in f.filename]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    place = ""
    if where is not None:
        name = "ccp/" + where.filename.split("/ccp/", 1)[1] if ours else where.filename.rsplit("/", 1)[-1]
        place = f" at {name}:{where.lineno} in {where.name}"
    message = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{place}"


def error_shape_problem(status: int, body: bytes, content_type: str | None) -> str | None:
    """None when `body` is the documented API error: {"error": {"code": str, "message": str, "details": object}}."""
    if not (content_type or "").startswith("application/json"):
        return f"not JSON ({content_type})"
    try:
        data = json.loads(body)
        err = data["error"]
    except (ValueError, KeyError, TypeError):
        return f"not the error shape: {_excerpt(body, 80)}"
    if not (isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)
            and isinstance(err.get("details"), dict)):
        return f"not the error shape: {_excerpt(body, 80)}"
    return None


def group(violations: list[Violation], limit: int = 400) -> str:
    """A readable report: violations grouped by (surface, route, problem kind), one reproducer and a count each."""
    groups: dict[tuple, list[Violation]] = defaultdict(list)
    for v in violations:
        groups[(v.probe.surface, v.probe.route, v.probe.klass, v.problem.split(":")[0])].append(v)
    lines = [f"{len(violations)} violation(s) in {len(groups)} group(s):"]
    for (surface, route, klass, _problem), items in sorted(groups.items()):
        lines.append(f"- [{surface}] {route} ({klass}) x{len(items)}: {items[0].line()}")
    text = "\n".join(lines)
    return text if len(text) < limit * 200 else text[: limit * 200] + "\n..."


# --- a real HTTP server for framing cases ---------------------------------------------------------------------------

@contextmanager
def serve(app):
    """Serve `app` with Werkzeug's threaded HTTP/1.1 server on 127.0.0.1; yields the port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def chunked(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    """`data` in Transfer-Encoding: chunked framing (with the final zero-size chunk)."""
    pieces = [f"{len(data[i:i + size]):x}\r\n".encode() + data[i:i + size] + b"\r\n" for i in range(0, len(data), size)]
    return [*pieces, b"0\r\n\r\n"]


@dataclass
class RawResponse:
    status: int | None
    content_type: str | None
    body: bytes
    error: str = ""


def raw_request(port: int, method: str, path: str, headers: dict, payload: list[bytes], *,
                timeout: float = 15.0) -> RawResponse:
    """Send a request byte for byte (headers exactly as given, `Connection: close` added) on a socket; the payload is
    written from another thread, so a server that answers without reading it does not stall us. Our sending side is
    shut after the payload: the server sees the end of what we sent (Werkzeug drains unread bodies until then, and a
    body shorter than its Content-Length ends there)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    send_error: list[str] = []

    def send() -> None:
        try:
            sock.sendall(head.encode("latin-1"))
            for piece in payload:
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server answered and closed before reading everything: fine
            send_error.append(type(exc).__name__)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = bytearray()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except OSError as exc:
        if not received:
            sender.join(timeout)
            sock.close()
            return RawResponse(None, None, b"", f"no response ({type(exc).__name__}; send: {send_error})")
    sender.join(timeout)
    sock.close()
    head_bytes, _, body = bytes(received).partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return RawResponse(None, None, bytes(received), f"unparseable response {bytes(received[:80])!r}")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawResponse(status, fields.get("content-type"), body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)
