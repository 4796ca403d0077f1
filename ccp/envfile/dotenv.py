""".env parsing, in-place patching and masking with docker compose semantics (pure: no I/O).

Written by hand because no library both reads .env exactly like docker compose (compose-go's dotenv parser) *and*
reports where each assignment sits in the text, which in-place patching needs (python-dotenv differs from compose on
escapes and cannot rewrite one line while keeping every other byte).

Semantics followed (compose-go ``dotenv/parser.go``):
- CRLF is read as LF; blank lines and lines whose first non-blank character is ``#`` are comments;
- an optional ``export`` prefix; key characters ``[A-Za-z0-9_.\\-\\[\\]]`` followed by ``=`` (or yaml-style ``:``);
- unquoted values run to the end of the line, an inline comment starts at `` #``, trailing blanks are dropped;
- single-quoted values are literal; double-quoted values decode ``\\n``, ``\\r`` and ``\\X`` -> ``X`` (``\\$`` kept);
  quoted values may span lines;
- duplicate keys: the last one wins.
Variable references (``${VAR}``) are returned as written: this module never consults the process environment.
A key with no ``=`` (inherit from the environment) is not an assignment and is not reported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MASK = "********"

_KEY_CHARS = r"[A-Za-z0-9_.\-\[\]]"
_ASSIGN_RE = re.compile(r"^([ \t\f\v]*(?:export[ \t]+)?)(" + _KEY_CHARS + r"+)([ \t]*[=:][ \t\f\v\r]*)")
_INHERIT_RE = re.compile(r"^[ \t\f\v]*(?:export[ \t]+)?" + _KEY_CHARS + r"+[ \t\f\v\r]*$")
_PATCH_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values compose and python-dotenv both read verbatim when written without quotes.
_SAFE_UNQUOTED_RE = re.compile(r"^[A-Za-z0-9_./:@+,%=~^-]*$")
_COMMENT_ASSIGN_RE = re.compile(r"^([ \t]*#[^=]*=)")


class EnvParseError(ValueError):
    """The .env text is not something docker compose would read (message names the line)."""


class EnvPatchError(ValueError):
    """A requested .env change was refused; nothing was changed."""


@dataclass(frozen=True)
class EnvEntry:
    """One assignment: lines ``first..last`` (0-based physical lines) and the value's span inside line ``first``.

    ``value_start``/``value_end`` are character offsets in the first line (without its CR); for a multi-line
    quoted value ``value_end`` is None.
    """

    key: str
    value: str
    first: int
    last: int
    value_start: int
    value_end: int | None


def _physical_lines(text: str) -> list[str]:
    """Split on LF only (never on other separators str.splitlines knows); a final LF yields a trailing ''."""
    return text.split("\n")


def _decode_double(raw: str) -> str:
    out = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append({"n": "\n", "r": "\r", "$": "\\$"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _scan_quoted(lines: list[str], idx: int, start: int) -> tuple[str, int, int]:
    """Find the closing quote of a value starting at ``lines[idx][start]``; returns (raw, last_line, end_col)."""
    quote = lines[idx][start]
    escaped = False
    parts = []
    line_no, col = idx, start + 1
    while line_no < len(lines):
        line = lines[line_no].removesuffix("\r") if line_no + 1 < len(lines) else lines[line_no]
        seg_start = col
        while col < len(line):
            ch = line[col]
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                parts.append(line[seg_start:col])
                return "\n".join(parts), line_no, col + 1
            col += 1
        parts.append(line[seg_start:])
        escaped = False  # compose: a newline consumes a pending backslash escape
        line_no, col = line_no + 1, 0
    raise EnvParseError(f"line {idx + 1}: quoted value is never closed")


def parse_entries(text: str) -> list[EnvEntry]:
    """Return every assignment of a .env text in file order.

    Raises EnvParseError (naming the line) for a line compose would refuse: bad key characters, an unclosed
    quote, or text after a closing quote.
    """
    lines = _physical_lines(text)
    entries: list[EnvEntry] = []
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        stripped = line.strip(" \t\f\v\r")
        if not stripped or stripped.startswith("#") or _INHERIT_RE.match(line):
            i += 1
            continue
        m = _ASSIGN_RE.match(line)
        if not m:
            raise EnvParseError(f"line {i + 1}: not a KEY=value assignment")
        key, vstart = m.group(2), m.end()
        if vstart < len(line) and line[vstart] in "'\"":
            raw, last, end_col = _scan_quoted(lines, i, vstart)
            tail = lines[last].removesuffix("\r")[end_col:]
            if tail.strip() and not tail.strip().startswith("#"):
                raise EnvParseError(f"line {last + 1}: unexpected text after the closing quote")
            value = _decode_double(raw) if line[vstart] == '"' else raw
            entries.append(EnvEntry(key, value, i, last, vstart, end_col if last == i else None))
            i = last + 1
            continue
        rest = line[vstart:]
        cut = rest.find(" #")
        value = (rest if cut < 0 else rest[:cut]).rstrip(" \t\f\v\r\x85\xa0")
        entries.append(EnvEntry(key, value, i, i, vstart, vstart + len(value)))
        i += 1
    return entries


def parse_env(text: str) -> dict[str, str]:
    """Read a .env text as docker compose does and return {key: value}; duplicate keys: the last wins.

    Raises EnvParseError for text compose would refuse.
    """
    return {e.key: e.value for e in parse_entries(text)}


def env_key_names(text: str) -> list[str]:
    """Return the assigned key names in order of first appearance, each once. Raises EnvParseError."""
    return list(dict.fromkeys(e.key for e in parse_entries(text)))


def encode_value(key: str, value: str) -> str:
    """Return ``value`` written so that docker compose and python-dotenv both read it back unchanged.

    Raises EnvPatchError when no such spelling exists (NUL or CR, or ``$`` together with a quote, backslash or
    newline) -- refusing is better than a value compose would silently expand or truncate.
    """
    if not isinstance(value, str):
        raise EnvPatchError(f"value for {key} must be a string")
    if "\x00" in value or "\r" in value:
        raise EnvPatchError(f"value for {key} contains a NUL or carriage return, which .env cannot hold")
    if _SAFE_UNQUOTED_RE.match(value):
        return value
    if "'" not in value and "\\" not in value and "\n" not in value:
        return f"'{value}'"
    if "$" not in value:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    raise EnvPatchError(
        f"value for {key} mixes '$' with a quote, backslash or newline; docker compose would not read it back "
        "unchanged"
    )


def _check_updates(updates: dict[str, str]) -> dict[str, str]:
    if not isinstance(updates, dict):
        raise EnvPatchError("updates must be a mapping of KEY to value")
    encoded = {}
    for key, value in updates.items():
        if not isinstance(key, str) or not _PATCH_KEY_RE.match(key):
            raise EnvPatchError(f"invalid key name {key!r}: use letters, digits and _ (not starting with a digit)")
        encoded[key] = encode_value(key, value)
    return encoded


def plan_patch(text: str, updates: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """Return ``text`` with ``updates`` applied in place, and (new_text, changed_keys, appended_keys).

    Promises: each changed key's (last) definition is rewritten on its own line keeping its prefix (``export``,
    spacing) and inline comment; every other line is byte-identical; keys not present are appended (a newline is
    added first if the text lacked a final one); the result reads back with exactly the requested values.
    Raises EnvPatchError for an invalid key name or a value compose could not read back identically, and
    EnvParseError when ``text`` itself is not a valid .env.
    """
    encoded = _check_updates(updates)
    entries = parse_entries(text)
    current = {e.key: e for e in entries}  # last definition wins
    lines = _physical_lines(text)
    eol = "\r\n" if "\r\n" in text else "\n"
    changed, appended, replace = [], [], {}
    for key, value in updates.items():
        entry = current.get(key)
        if entry is None:
            appended.append(key)
            continue
        if entry.value == value:
            continue
        body = lines[entry.first].removesuffix("\r")
        tail = body[entry.value_end:] if entry.value_end is not None else ""
        last_cr = "\r" if entry.last + 1 < len(lines) and lines[entry.last].endswith("\r") else ""
        replace[entry.first] = (entry.last, body[: entry.value_start] + encoded[key] + tail + last_cr)
        changed.append(key)
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i in replace:
            last, new_line = replace[i]
            out.append(new_line)
            i = last + 1
        else:
            out.append(lines[i])
            i += 1
    new_text = "\n".join(out)
    if appended:
        if new_text and not new_text.endswith("\n"):
            new_text += eol
        new_text += "".join(f"{k}={encoded[k]}{eol}" for k in appended)
    _verify(text, new_text, updates)
    return new_text, changed, appended


def _verify(old: str, new: str, updates: dict[str, str]) -> None:
    """Belt and braces: the result must read back with exactly the requested values and nothing else changed."""
    try:
        before, after = parse_env(old), parse_env(new)
    except EnvParseError as exc:  # pragma: no cover - would be a bug in plan_patch
        raise EnvPatchError(f"patched .env would not parse: {exc}") from exc
    expected = {**before, **updates}
    if after != expected:
        bad = sorted(k for k in set(after) | set(expected) if after.get(k) != expected.get(k))
        raise EnvPatchError(f"patched .env would not read back identically for {', '.join(bad)}")


def _mask_line(line: str) -> str:
    """Mask one physical line on its own (used when the structure around it is unknown)."""
    body = line.removesuffix("\r")
    cr = line[len(body):]
    if not body.strip():
        return line
    if body.lstrip().startswith("#"):
        m = _COMMENT_ASSIGN_RE.match(body)
        return (m.group(1) + MASK + cr) if m else line
    m = _ASSIGN_RE.match(body)
    if m:
        return body[: m.end()] + MASK + cr
    return MASK + cr


def mask_env_text(text: str, shown: dict[str, str] | None = None) -> str:
    """Return ``text`` with every value replaced by ``********``; keys, comments and line count are kept.

    Commented-out assignments (``# KEY=value``) are masked too, and every continuation line of a multi-line
    value becomes ``********``. Text that does not parse is masked line by line, hiding anything unrecognised.
    ``shown`` maps keys to the one value each may show (decided by ccp.envfile.secrecy): a one-line assignment of
    exactly that value is left as written. Never raises for str input.
    """
    shown = shown or {}
    lines = _physical_lines(text)
    try:
        entries = parse_entries(text)
    except EnvParseError:
        return "\n".join(_mask_line(line) for line in lines)
    out = [_mask_line(line) if line.lstrip().startswith("#") or not line.strip() else line for line in lines]
    for e in entries:
        if e.first == e.last and e.key in shown and shown[e.key] == e.value:
            continue
        first = lines[e.first]
        cr = "\r" if first.endswith("\r") else ""
        body = first.removesuffix("\r")
        tail = body[e.value_end:] if e.value_end is not None else ""
        tail = tail if not tail.strip() or tail.lstrip().startswith("#") and "=" not in tail else ""
        out[e.first] = body[: e.value_start] + MASK + tail + cr
        for j in range(e.first + 1, e.last + 1):
            out[j] = MASK + ("\r" if lines[j].endswith("\r") else "")
    return "\n".join(out)
