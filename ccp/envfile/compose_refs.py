"""Which variables a compose file references, and whether a tenant's .env covers them.

Compose interpolates every string *value* of the YAML document (keys and comments are left alone), so the file is
parsed with PyYAML first and only string scalars are scanned. The scanner follows compose-go's rules, checked against
the real `docker-compose config`:

- ``$$`` is an escaped dollar; ``$`` followed by anything that does not start a name is a literal dollar;
- ``$NAME`` and ``${NAME}`` are required references;
- ``${NAME:-default}`` / ``${NAME-default}`` use the default when NAME is unset (or empty, with the colon);
- ``${NAME:?err}`` / ``${NAME?err}`` are required and fail with ``err`` when missing;
- ``${NAME:+alt}`` / ``${NAME+alt}`` never need NAME (empty when unset);
- defaults may nest references (``${A:-${B:-x}}``); braces inside a default are balanced, as compose does.

A reference nested inside a default is needed only when every enclosing variable is missing, so it is recorded as
*conditional* rather than required. The scanner is written by hand because no maintained Python library implements
compose's interpolation grammar (python-dotenv and string.Template both differ on ``:?``, ``+`` and nesting).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

# libyaml's safe loader when PyYAML was built with it: ~9x faster on the default set's compose file (7.7 ms vs 70 ms),
# which every preview and apply parses for env coverage; same documents (tests/envfile/test_compose_refs.py).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


@dataclass(frozen=True)
class ComposeVars:
    """Variables referenced by a compose file.

    ``required``: referenced at least once without a default (compose would substitute "" or fail).
    ``defaulted``: name -> default text (first seen), for names that are never required.
    ``all``: every referenced name.
    ``conditional``: name -> alternatives; each alternative is the set of enclosing variables that must *all* be
    missing before this nested reference is evaluated. Names here are in neither ``required`` nor ``defaulted``.
    """

    required: frozenset[str]
    defaulted: dict[str, str]
    all: frozenset[str]
    conditional: dict[str, tuple[frozenset[str], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Ref:
    name: str
    operator: str | None  # None for $X / ${X}
    text: str  # default / error / replacement text
    nested: tuple[_Ref, ...]


def _parse(text: str, where: str) -> list[_Ref]:
    """Scan one string value for references; raises ValueError on a malformed ``${...}``."""
    refs: list[_Ref] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] != "$":
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            i += 2
            continue
        if nxt == "{":
            ref, i = _parse_braced(text, i + 2, where)
            refs.append(ref)
            continue
        match = _NAME.match(text, i + 1)
        if match:
            refs.append(_Ref(match.group(), None, "", ()))
            i = match.end()
        else:
            i += 1  # a lone "$" is a literal dollar for compose
    return refs


def _parse_braced(text: str, start: int, where: str) -> tuple[_Ref, int]:
    """Parse after ``${``; returns the reference and the index just past its closing brace."""
    match = _NAME.match(text, start)
    if not match:
        raise ValueError(f"invalid interpolation format in {where}: {text!r}")
    name, pos = match.group(), match.end()
    if pos < len(text) and text[pos] == "}":
        return _Ref(name, None, "", ()), pos + 1
    operator = next((op for op in _OPERATORS if text.startswith(op, pos)), None)
    if operator is None:
        raise ValueError(f"invalid interpolation format in {where}: {text!r}")
    body_start = pos + len(operator)
    depth, j = 1, body_start
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                break
        j += 1
    else:
        raise ValueError(f"unterminated ${{...}} in {where}: {text!r}")
    body = text[body_start:j]
    nested = tuple(_parse(body, where)) if operator in (":-", "-") else ()
    return _Ref(name, operator, body, nested), j + 1


def _strings(node: object, path: str):
    """Yield (path, string) for every string value in a parsed YAML tree (keys are not interpolated)."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")


def compose_variables(compose_text: str) -> ComposeVars:
    """Return the variables ``compose_text`` references, classified as required / defaulted / conditional.

    Raises ValueError when the text is not a YAML mapping or holds a malformed reference (as compose would).
    The answer for one text is kept (a preview, the apply that follows it and a re-preview parse the same rendered
    compose file: ~30 ms each for the default set); treat it as read-only.
    """
    return _compose_variables(compose_text)


@functools.lru_cache(maxsize=64)
def _compose_variables(compose_text: str) -> ComposeVars:
    try:
        document = yaml.load(compose_text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ValueError(f"compose file is not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ValueError("compose file must be a YAML mapping at the top level")  # noqa: TRY004 - input error

    required: set[str] = set()
    defaulted: dict[str, str] = {}
    conditional: dict[str, set[frozenset[str]]] = {}
    seen: set[str] = set()

    def visit(ref: _Ref, enclosing: frozenset[str]) -> None:
        seen.add(ref.name)
        needs_value = ref.operator in (None, ":?", "?")
        if needs_value and not enclosing:
            required.add(ref.name)
        elif needs_value:
            conditional.setdefault(ref.name, set()).add(enclosing)
        elif ref.operator in (":-", "-"):
            defaulted.setdefault(ref.name, ref.text)
        else:  # ":+" / "+": an unset variable just yields ""
            defaulted.setdefault(ref.name, "")
        for inner in ref.nested:
            visit(inner, enclosing | {ref.name})

    for where, value in _strings(document, ""):
        for ref in _parse(value, where):
            visit(ref, frozenset())

    for name in required:
        defaulted.pop(name, None)
        conditional.pop(name, None)
    for name in conditional:
        defaulted.pop(name, None)
    return ComposeVars(
        required=frozenset(required),
        defaulted=dict(sorted(defaulted.items())),
        all=frozenset(seen),
        conditional={k: tuple(sorted(v, key=sorted)) for k, v in sorted(conditional.items())},
    )


def env_coverage(
    compose: str | ComposeVars, available_keys: Iterable[str], patched_keys: Iterable[str] = ()
) -> dict:
    """Compare what compose needs with the keys a tenant will have.

    A variable is *present* when it is in ``available_keys`` (e.g. the .env key names) or ``patched_keys`` (keys CCP
    will set). *missing* lists required variables that are not present, plus nested references whose enclosing
    variables are all missing. *defaulted* lists every other variable that is not present (compose falls back to a
    default). ``present + len(missing) + len(defaulted) == total``. Raises ValueError like compose_variables.
    """
    refs = compose if isinstance(compose, ComposeVars) else compose_variables(compose)
    keys = set(available_keys) | set(patched_keys)
    missing = {name for name in refs.required if name not in keys}
    for name, alternatives in refs.conditional.items():
        if name not in keys and any(not (outer & keys) for outer in alternatives):
            missing.add(name)
    present = sum(1 for name in refs.all if name in keys)
    defaulted = sorted(name for name in refs.all if name not in keys and name not in missing)
    return {"total": len(refs.all), "present": present, "missing": sorted(missing), "defaulted": defaulted}
