"""A unified diff laid out for reading like a code review: rows with line numbers on both sides, the changed part of
a modified line marked, and a side-by-side pairing of the same rows.

The agent sends `diff -u` text (ccp.hostops.diff); this module only reads it. Written here because the libraries that
render diffs to HTML (difflib.HtmlDiff, diff2html) want both whole files, which the preview does not have: a
provisioned tenant's .env must stay masked, and the agent sends the hunks only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from itertools import zip_longest

from ccp.drivers import FileDiff

# Diffs up to this many lines are laid out inline in the preview; longer ones are loaded when asked for.
INLINE_DIFF_LINES = 300
# Lines longer than this are not compared character by character (the cost grows with the square of the length).
INTRALINE_MAX_CHARS = 400
# Below this similarity a modified line is shown as wholly replaced (marking scattered characters reads worse).
INTRALINE_MIN_RATIO = 0.4

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")


@dataclass
class Row:
    """One line of a diff: `kind` is ctx, del, add, hunk, note or file; `parts` are (marked, text) pieces of the line
    without its +/-/space prefix (marked: the characters that differ from its paired line)."""

    kind: str
    old_no: int | None
    new_no: int | None
    parts: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.parts)

    @property
    def sign(self) -> str:
        return {"del": "-", "add": "+", "ctx": " "}.get(self.kind, "")

    @property
    def css(self) -> str:
        return f"d-{self.kind}"


@dataclass(frozen=True)
class DiffView:
    """A file's diff as the preview shows it: `rows` (unified) and `pairs` (side by side: (left, right), either side
    None where the other has no counterpart), or `deferred` when it is too long to lay out inline."""

    path: str
    lines: int
    rows: tuple[Row, ...] = ()
    pairs: tuple[tuple[Row | None, Row | None], ...] = ()
    deferred: bool = False


def parse_rows(text: str) -> list[Row]:
    """The rows of a unified diff, numbered from its hunk headers; a changed line's differing part marked."""
    rows: list[Row] = []
    old_no = new_no = 0
    for line in text.split("\n"):
        if not line:  # the end of the text (an empty context line is " ")
            continue
        if line.startswith(("--- ", "+++ ")) and (not rows or rows[-1].kind in ("file", "note")):
            rows.append(Row("file", None, None, [(False, line)]))
            continue
        match = _HUNK_RE.match(line)
        if match:
            old_no, new_no = int(match.group(1)), int(match.group(2))
            rows.append(Row("hunk", None, None, [(False, line)]))
        elif line.startswith("\\"):
            rows.append(Row("note", None, None, [(False, line)]))
        elif line.startswith("-"):
            rows.append(Row("del", old_no, None, [(False, line[1:])]))
            old_no += 1
        elif line.startswith("+"):
            rows.append(Row("add", None, new_no, [(False, line[1:])]))
            new_no += 1
        else:
            rows.append(Row("ctx", old_no, new_no, [(False, line[1:])]))
            old_no += 1
            new_no += 1
    for dels, adds in _change_blocks(rows):
        for old, new in zip(dels, adds, strict=False):  # a longer run's extra lines have no partner
            _mark_intraline(old, new)
    return rows


def _change_blocks(rows: list[Row]):
    """Each run of removed lines with the run of added lines right after it."""
    i = 0
    while i < len(rows):
        if rows[i].kind != "del":
            i += 1
            continue
        start = i
        while i < len(rows) and rows[i].kind == "del":
            i += 1
        mid = i
        while i < len(rows) and rows[i].kind == "add":
            i += 1
        yield rows[start:mid], rows[mid:i]


def _mark_intraline(old: Row, new: Row) -> None:
    a, b = old.text, new.text
    if len(a) > INTRALINE_MAX_CHARS or len(b) > INTRALINE_MAX_CHARS:
        return
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < INTRALINE_MIN_RATIO:
        return
    old_parts, new_parts = [], []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if a2 > a1:
            old_parts.append((op != "equal", a[a1:a2]))
        if b2 > b1:
            new_parts.append((op != "equal", b[b1:b2]))
    old.parts, new.parts = old_parts, new_parts


def side_by_side(rows: list[Row]) -> list[tuple[Row | None, Row | None]]:
    """Pair rows for two columns: context on both sides, each removed line beside the added line of its block."""
    pairs: list[tuple[Row | None, Row | None]] = []
    i = 0
    while i < len(rows):
        row = rows[i]
        if row.kind == "del":
            dels, adds = next(_change_blocks(rows[i:]))
            pairs.extend(zip_longest(dels, adds))
            i += len(dels) + len(adds)
            continue
        pairs.append((None, row) if row.kind == "add" else (row, row))  # context, hunk and note rows span both
        i += 1
    return pairs


def diff_view(diff: FileDiff, *, inline_limit: int = INLINE_DIFF_LINES, force: bool = False) -> DiffView:
    """`diff` laid out for the preview; a diff longer than `inline_limit` lines is deferred unless `force`."""
    lines = diff.diff.count("\n") + (0 if diff.diff.endswith("\n") or not diff.diff else 1)
    if lines > inline_limit and not force:
        return DiffView(diff.path, lines, deferred=True)
    rows = [row for row in parse_rows(diff.diff) if row.kind != "file"]
    return DiffView(diff.path, lines, tuple(rows), tuple(side_by_side(rows)))
