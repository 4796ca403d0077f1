"""Fast, bounded unified diff of two texts.

difflib's matcher goes quadratic on files made of repeated lines (~27 s for 20,000 lines). The edit script comes
from one of two engines, both bounded:
- rapidfuzz's bit-parallel LCS (C++, O(N*M/64) whatever the content; LCS-optimal) on lines mapped to integer ids,
  after trimming the common prefix and suffix. Always available; used for small regions (where spawning a process
  would cost more than the diff) and as the fallback. Regions too large for its bit matrix are split on lines unique
  to both sides (patience anchors), then into proportional slices within a total budget: still a correct diff, maybe
  not minimal (a slice of junk against junk is one replacement).
- GNU diff when installed, for large regions where it is expected to be cheaper: it is O(N*D), so much faster when
  few lines changed. It gets twice the time the LCS engine is expected to need (within ``GNU_DIFF_MIN_TIMEOUT_S`` ..
  ``GNU_DIFF_TIMEOUT_S``); past that (many changes, where GNU slows down) the LCS engine answers instead, so a diff
  costs at most ~1.5x GNU's own time, and under 1 s for any text the agent accepts (4 MB).
  When no line needs masking, GNU's own ``diff -u`` text is the answer (only cut at a hunk boundary past the limit):
  rendering it again here would cost more than GNU's whole run. When lines are masked (.env files), GNU prints only
  its group ranges and the text is rendered here from the masked lines, so a secret never crosses into the output.
Hunk grouping reuses difflib's own code, so the output is standard ``diff -u`` either way.
"""
from __future__ import annotations

import contextlib
import difflib
import fcntl
import math
import os
import select
import shutil
import subprocess
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass

from rapidfuzz.distance import Indel

# rapidfuzz keeps an N*M/8-byte bit matrix: 4.5e8 cells ~ 55 MB, enough for a 20,000 x 20,000-line region.
# Larger regions are split first, so memory stays bounded whatever CCP sends.
MAX_LCS_CELLS = 450_000_000
CHUNK_CELLS = 100_000_000
# What the slices of one region may cost together (~0.1-0.25 s): a 4 MB file of 1M one-character lines rewritten
# (10^12 cells) is cut into 1,000 slices of 1,000 x 1,000 lines rather than 100 of 10,000 x 10,000 (over 1 s).
LCS_BUDGET_CELLS = 1_000_000_000
# A slice with more than one run per this many lines (of both sides) is printed as one replacement.
FRAGMENTED_LINES_PER_RUN = 8
# Below this many cells rapidfuzz finishes within a millisecond: GNU diff is not even considered.
GNU_DIFF_MIN_CELLS = 4_000_000
# The engine is chosen by expected cost. The LCS engine costs per cell of its bit matrix ~1e-10 s when the region
# has few distinct lines and ~2-2.5e-10 s when most lines are distinct (rapidfuzz then looks them up in a hash map);
# GNU diff costs a process start plus writing, reading and hashing both texts, plus its O(N*D) search, which cannot be
# known beforehand.
LCS_S_PER_CELL = 1e-10
LCS_S_PER_CELL_DISTINCT = 2.5e-10
GNU_START_S = 0.002
GNU_S_PER_BYTE = 2e-9
# GNU gets twice the LCS engine's expected time, within these bounds; past that the LCS engine answers, so a diff GNU
# gives up on costs at most ~1.5x what GNU alone would have (when the estimate holds).
GNU_DIFF_MIN_TIMEOUT_S = 0.02
GNU_DIFF_TIMEOUT_S = 0.25
PIPE_BYTES = 1 << 20
_GROUP_FORMATS = tuple(f"--{kind}-group-format=%de %dl %dE %dL\n" for kind in ("old", "new", "changed"))

NO_EOL = "\\ No newline at end of file\n"
_NO_EOL = NO_EOL.encode()

Opcode = tuple[str, int, int, int, int]


@dataclass(frozen=True)
class DiffResult:
    """A rendered diff: text (possibly truncated), +/- line counts over the whole diff, truncated flag."""

    text: str
    added: int
    removed: int
    truncated: bool


def split_lines(text: str) -> tuple[list[str], bool]:
    """Split on LF only (a CR stays part of its line); returns (lines without LF, whether the text ends with LF).

    An empty text has no lines.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
        return lines, True
    return lines, False


def _split_bytes(data: bytes) -> tuple[list[bytes], bool]:
    """split_lines on UTF-8 bytes (no multi-byte character contains the LF byte, so the lines are the same)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
        return lines, True
    return lines, False


def _encode_lines(lines: list[str]) -> list[bytes]:
    """The lines as UTF-8, encoded in one go (a line holding an LF becomes two and fails the count check)."""
    return "\n".join(lines).encode("utf-8", "surrogatepass").split(b"\n") if lines else []


def _keys(lines: list, final_eol: bool) -> list:
    """Comparison keys: a last line without LF must differ from the same text with LF, so it becomes a tuple."""
    if lines and not final_eol:
        return lines[:-1] + [(lines[-1],)]
    return lines


def _lcs_opcodes(a: list[int], b: list[int], a0: int, b0: int) -> list[Opcode]:
    if not a and not b:
        return []
    if not a:
        return [("insert", a0, a0, b0, b0 + len(b))]
    if not b:
        return [("delete", a0, a0 + len(a), b0, b0)]
    return [(op.tag, op.src_start + a0, op.src_end + a0, op.dest_start + b0, op.dest_end + b0)
            for op in Indel.opcodes(a, b)]


def _unique_anchors(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    """Pairs (i, j) of lines occurring exactly once in each side, longest increasing run in both (patience)."""
    count_a, count_b = Counter(a), Counter(b)  # counted in C
    unique = {x for x, c in count_a.items() if c == 1 and count_b[x] == 1}
    if not unique:
        return []
    pos_b = {x: j for j, x in enumerate(b) if x in unique}
    pairs = [(i, pos_b[x]) for i, x in enumerate(a) if x in unique]
    # Longest increasing subsequence on j (patience sorting with back-pointers).
    tails: list[int] = []
    tail_idx: list[int] = []
    prev = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tail_idx.append(k)
        else:
            tails[pos] = j
            tail_idx[pos] = k
        prev[k] = tail_idx[pos - 1] if pos else -1
    out = []
    k = tail_idx[-1] if tail_idx else -1
    while k >= 0:
        out.append(pairs[k])
        k = prev[k]
    return out[::-1]


def _chunked_opcodes(a: list[int], b: list[int], a0: int, b0: int) -> list[Opcode]:
    """Huge region with no unique anchor: diff proportional slices (correct, not necessarily minimal), each at most
    CHUNK_CELLS and all together at most LCS_BUDGET_CELLS. A slice whose edit script alternates every few lines
    (junk against junk: GNU diff gave up on it first) is printed as one replacement: no less readable, and it keeps
    the number of runs, which the grouping and rendering pay for one by one, bounded."""
    cells = len(a) * len(b)
    pieces = max(2, math.ceil(math.sqrt(cells / CHUNK_CELLS)), math.ceil(cells / LCS_BUDGET_CELLS))
    ops: list[Opcode] = []
    for k in range(pieces):
        i1, i2 = len(a) * k // pieces, len(a) * (k + 1) // pieces
        j1, j2 = len(b) * k // pieces, len(b) * (k + 1) // pieces
        slice_a, slice_b = a[i1:i2], b[j1:j2]
        if slice_a and slice_b and len(Indel.opcodes(slice_a, slice_b)) * FRAGMENTED_LINES_PER_RUN > i2 - i1 + j2 - j1:
            ops.append(("replace", a0 + i1, a0 + i2, b0 + j1, b0 + j2))
        else:
            ops.extend(_lcs_opcodes(slice_a, slice_b, a0 + i1, b0 + j1))
    return ops


def _region_opcodes(a: list[int], b: list[int], a0: int, b0: int) -> list[Opcode]:
    if len(a) * len(b) <= MAX_LCS_CELLS:
        return _lcs_opcodes(a, b, a0, b0)
    anchors = _unique_anchors(a, b)
    if not anchors:
        return _chunked_opcodes(a, b, a0, b0)
    ops: list[Opcode] = []
    pi = pj = 0
    for i, j in anchors + [(len(a), len(b))]:
        ops.extend(_region_opcodes(a[pi:i], b[pj:j], a0 + pi, b0 + pj))
        if i < len(a):
            ops.append(("equal", a0 + i, a0 + i + 1, b0 + j, b0 + j + 1))
        pi, pj = i + 1, j + 1
    return ops


def _merge(ops: list[Opcode]) -> list[Opcode]:
    """Merge adjacent opcodes into maximal runs (difflib's grouping expects them): runs of one tag become one, and
    touching inserts and deletes (the LCS engine emits an insert *before* the delete it replaces) become one
    "replace", which is printed the `diff -u` way: every removed line, then every added line."""
    out: list[Opcode] = []
    for op in ops:
        if op[1] == op[2] and op[3] == op[4]:
            continue
        if out and (out[-1][0] == op[0] or (out[-1][0] != "equal" and op[0] != "equal")):
            t, i1, _, j1, _ = out[-1]
            tag = t if t == op[0] else "replace"
            out[-1] = (tag, i1, op[2], j1, op[4])
        else:
            out.append(op)
    return out


def _drain(proc: subprocess.Popen, fd: int, deadline: float) -> bytes | None:
    """All ``proc`` writes to the pipe ``fd`` until it closes it; None (and ``proc`` killed) past ``deadline``.

    Read here with poll and large reads, not by subprocess.run(timeout=...), whose 32 kB reads between select calls
    cost more than GNU's whole run on a 2 MB diff."""
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            proc.kill()
            proc.wait()
            return None
        chunk = os.read(fd, PIPE_BYTES)
        if not chunk:
            proc.wait()  # it closed its output: it is exiting
            return b"".join(chunks)
        chunks.append(chunk)


def _run_gnu(old: bytes, new: bytes, args: list, timeout: float) -> bytes | None:
    """GNU diff's output with ``args`` on the two texts (written to temporary files, as text whatever they hold);
    None if diff is missing, fails or runs out of time."""
    exe = shutil.which("diff")
    if exe is None:
        return None
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="ccp-diff-") as tmp:
        old_path, new_path = os.path.join(tmp, "old"), os.path.join(tmp, "new")
        for path, data in ((old_path, old), (new_path, new)):
            with open(path, "wb") as fh:
                fh.write(data)
        read_fd, write_fd = os.pipe()
        try:
            if hasattr(fcntl, "F_SETPIPE_SZ"):  # a larger pipe: GNU's output crosses in a few big writes
                with contextlib.suppress(OSError):
                    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            try:
                proc = subprocess.Popen([exe, "-a", *args, "--", old_path, new_path], stdin=subprocess.DEVNULL,
                                        stdout=write_fd, stderr=subprocess.DEVNULL,
                                        env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")})
            except (OSError, ValueError):  # ValueError: a NUL in an argument
                return None
            os.close(write_fd)
            write_fd = -1
            out = _drain(proc, read_fd, deadline)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
    return out if out is not None and proc.returncode in (0, 1) else None


def _gnu_diff_opcodes(old: bytes, new: bytes, timeout: float = GNU_DIFF_TIMEOUT_S) -> list[Opcode] | None:
    """Edit script from GNU diff's group ranges; None if diff is missing, fails or runs out of time.

    Each changed group is printed as four numbers, `e l E L` (lines e+1..l of the old file became lines E+1..L of the
    new one), so neither the changed text nor hunk headers cross the pipe to be parsed again.
    """
    out = _run_gnu(old, new, ["--unchanged-group-format=", *_GROUP_FORMATS], timeout)
    if out is None:
        return None
    try:
        numbers = list(map(int, out.split()))
    except ValueError:  # not this diff's group output (a diff without the format options): use our engine
        return None
    if len(numbers) % 4:
        return None
    it = iter(numbers)
    return [("delete" if j1 == j2 else "insert" if i1 == i2 else "replace", i1, i2, j1, j2)
            for i1, i2, j1, j2 in zip(it, it, it, it, strict=True)]


def _gnu_unified(old: bytes, new: bytes, header: str, labels: tuple[str, str], context: int, growth: int,
                 limit_bytes: int, timeout: float) -> DiffResult | None:
    """GNU ``diff -u``'s own text, cut at the last hunk boundary within ``limit_bytes``; None when GNU cannot answer
    (then the caller renders). ``growth`` is len(new lines) - len(old lines): added = removed + growth, so only the
    removed lines are counted (every line of a hunk starts with its mark, so each one follows a newline)."""
    args = [f"-U{context}", *(b"--label=" + label.encode("utf-8", "surrogatepass") for label in labels)]
    raw = _run_gnu(old, new, args, timeout)
    head = header.encode("utf-8", "surrogatepass")
    if raw is None or len(raw) <= len(head) or not raw.startswith(head):  # labels printed their own way: render
        return None
    removed = raw.count(b"\n-", len(head))
    truncated = len(raw) > limit_bytes
    if truncated:  # a hunk starts at a line beginning with "@@ -"; no other line does (content lines are marked)
        raw = raw[:max(len(head), raw.rfind(b"\n@@ -", len(head) - 1, limit_bytes + 4) + 1)]
    return DiffResult(raw.decode("utf-8", "surrogatepass"), removed + growth, removed, truncated)


def _fill_equal(ops: list[Opcode], a0: int, a1: int, b0: int) -> list[Opcode]:
    """Insert the 'equal' runs between non-equal opcodes covering a[a0:a1]."""
    out: list[Opcode] = []
    i, j = a0, b0
    for op in ops:
        if op[1] > i:
            out.append(("equal", i, op[1], j, op[3]))
        out.append(op)
        i, j = op[2], op[4]
    if i < a1:
        out.append(("equal", i, a1, j, j + (a1 - i)))
    return out


def _common_run(a: list, b: list, i: int, j: int, step: int, limit: int) -> int:
    """How many lines a and b share walking from a[i], b[j] in `step` direction (at most `limit`): compared a block
    at a time (list equality runs in C), then line by line inside the first block that differs."""
    done, block = 0, 256
    while done < limit:
        k = min(block, limit - done)
        if step > 0:
            same = a[i + done:i + done + k] == b[j + done:j + done + k]
        else:
            same = a[i - done - k + 1:i - done + 1] == b[j - done - k + 1:j - done + 1]
        if not same:
            break
        done += k
        block *= 2
    while done < limit and a[i + step * done] == b[j + step * done]:
        done += 1
    return done


@dataclass(frozen=True)
class _Plan:
    """How to diff: common prefix and suffix lengths, whether the region between them is a wholesale replacement
    (no line of one side occurs in the other: nothing to search), and GNU diff's time budget (None: the in-process
    engine is expected to be faster, or there is nothing to search)."""

    pre: int
    suf: int
    replaced: bool = False
    gnu_timeout: float | None = None


def _plan(a: list, b: list, old: bytes | None, new: bytes | None) -> _Plan:
    n, m = len(a), len(b)
    pre = _common_run(a, b, 0, 0, 1, min(n, m))
    suf = _common_run(a, b, n - 1, m - 1, -1, min(n, m) - pre)
    cells = (n - pre - suf) * (m - pre - suf)
    if cells <= GNU_DIFF_MIN_CELLS:
        return _Plan(pre, suf)
    distinct = set(a[pre:n - suf])
    if distinct.isdisjoint(b[pre:m - suf]):
        return _Plan(pre, suf, replaced=True)
    if old is None or new is None:
        return _Plan(pre, suf)
    lcs_s = cells * (LCS_S_PER_CELL if len(distinct) <= 256 else LCS_S_PER_CELL_DISTINCT)
    gnu_s = GNU_START_S + (len(old) + len(new)) * GNU_S_PER_BYTE
    if lcs_s <= gnu_s:
        return _Plan(pre, suf)
    return _Plan(pre, suf, gnu_timeout=min(GNU_DIFF_TIMEOUT_S, max(GNU_DIFF_MIN_TIMEOUT_S, 2 * lcs_s)))


def _in_process_opcodes(a: list, b: list, plan: _Plan) -> list[Opcode]:
    n, m, pre, suf = len(a), len(b), plan.pre, plan.suf
    if plan.replaced:
        return _merge([("equal", 0, pre, 0, pre), ("replace", pre, n - suf, pre, m - suf),
                       ("equal", n - suf, n, m - suf, m)])
    region_a, region_b = a[pre:n - suf], b[pre:m - suf]
    # Ids in order of first appearance (few distinct lines give small ids: rapidfuzz's fastest case), mapped in C.
    symbols = dict.fromkeys(region_a)
    symbols.update(dict.fromkeys(region_b))
    ids = dict(zip(symbols, range(len(symbols)), strict=True))
    ia, ib = list(map(ids.__getitem__, region_a)), list(map(ids.__getitem__, region_b))
    ops: list[Opcode] = [("equal", 0, pre, 0, pre)]
    ops += _region_opcodes(ia, ib, pre, pre)
    ops.append(("equal", n - suf, n, m - suf, m))
    return _merge(ops)


def diff_opcodes(a: list, b: list, *, old: bytes | None = None, new: bytes | None = None,
                 use_gnu: bool = True) -> list[Opcode]:
    """Return difflib-style opcodes (equal/delete/insert/replace) turning ``a`` into ``b`` (lists of line keys).

    ``old``/``new`` are the UTF-8 texts the keys came from; when given (and ``use_gnu``), GNU diff may be used for big
    inputs. ``use_gnu=False`` forces the in-process engine (tests compare both).
    """
    plan = _plan(a, b, old, new)
    if use_gnu and plan.gnu_timeout is not None:
        ops = _gnu_diff_opcodes(old, new, timeout=plan.gnu_timeout)
        if ops is not None:  # GNU's groups are maximal already (an unchanged line parts any two): no merge needed
            return _fill_equal(ops, 0, len(a), 0)
    return _in_process_opcodes(a, b, plan)


class _FixedMatcher(difflib.SequenceMatcher):
    """A SequenceMatcher whose opcodes are ours, so difflib's hunk grouping can be reused unchanged."""

    def __init__(self, opcodes: list[Opcode]):
        super().__init__(None, [], [])
        self._ours = opcodes

    def get_opcodes(self):
        return list(self._ours)


def _range(start: int, stop: int) -> str:
    length = stop - start
    beginning = start + 1 if length else start
    return str(beginning) if length == 1 else f"{beginning},{length}"


def _render(ops: list[Opcode], pa: list[bytes], pb: list[bytes], a_missing: int, b_missing: int, header: bytes,
            context: int, limit_bytes: int) -> tuple[bytes, bool]:
    """The hunks of ``ops`` printed from the lines ``pa``/``pb``, whole hunks up to ``limit_bytes``; (text, cut)."""
    out = [header]
    size = len(header)
    for group in _FixedMatcher(ops).get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        hunk = [f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n".encode()]
        for tag, i1, i2, j1, j2 in group:
            # One string per run (a join runs in C), so a hunk of thousands of small runs stays cheap.
            if i1 < i2:
                mark = b" " if tag == "equal" else b"-"
                hunk.append(mark + (b"\n" + mark).join(pa[i1:i2]) + b"\n")
                if i1 <= a_missing < i2:  # the file's last line: the last one of this run
                    hunk.append(_NO_EOL)
            if tag != "equal" and j1 < j2:
                hunk.append(b"+" + b"\n+".join(pb[j1:j2]) + b"\n")
                if j1 <= b_missing < j2:
                    hunk.append(_NO_EOL)
        hunk_size = sum(map(len, hunk))
        if size + hunk_size > limit_bytes:
            return b"".join(out), True
        out.extend(hunk)
        size += hunk_size
    return b"".join(out), False


def unified_diff(old: str, new: str, *, old_label: str, new_label: str, context: int = 3,
                 limit_bytes: int = 256 * 1024, show_old: list[str] | None = None,
                 show_new: list[str] | None = None, use_gnu: bool = True) -> DiffResult:
    """Return a `diff -u`-compatible diff of ``old`` -> ``new`` (GNU ``patch`` reproduces ``new`` from it).

    ``show_old``/``show_new`` optionally replace the printed line texts (same line count, e.g. masked .env
    lines) while the comparison uses the real ones. Text past ``limit_bytes`` (UTF-8) is cut at a hunk boundary
    and ``truncated`` is set; the +/- counts always cover the whole diff. An empty text means no difference.
    The work is done on UTF-8 bytes, as GNU diff does: splitting and hashing them is cheaper than Python strings of
    wide characters, and GNU reads and prints them as they are.
    """
    old_b, new_b = old.encode("utf-8", "surrogatepass"), new.encode("utf-8", "surrogatepass")
    (a, a_eol), (b, b_eol) = _split_bytes(old_b), _split_bytes(new_b)
    pa = _encode_lines(show_old) if show_old is not None else a
    pb = _encode_lines(show_new) if show_new is not None else b
    if len(pa) != len(a) or len(pb) != len(b):
        raise ValueError("show_old/show_new must have the same line counts as the texts")
    ka, kb = _keys(a, a_eol), _keys(b, b_eol)
    header = f"--- {old_label}\n+++ {new_label}\n"
    if show_old is None and show_new is None:  # nothing to mask: GNU's own text may be the answer
        plan = _plan(ka, kb, old_b, new_b)
        if use_gnu and plan.gnu_timeout is not None:
            result = _gnu_unified(old_b, new_b, header, (old_label, new_label), context, len(b) - len(a),
                                  limit_bytes, plan.gnu_timeout)
            if result is not None:
                return result
        ops = _in_process_opcodes(ka, kb, plan)
    else:  # masked: whichever engine finds the changes, the text is printed here from the shown lines
        ops = diff_opcodes(ka, kb, old=old_b, new=new_b, use_gnu=use_gnu)
    added = removed = 0
    for tag, i1, i2, j1, j2 in ops:
        if tag != "equal":
            added, removed = added + j2 - j1, removed + i2 - i1
    if not added and not removed:
        return DiffResult("", 0, 0, False)
    text, truncated = _render(ops, pa, pb, -1 if a_eol else len(a) - 1, -1 if b_eol else len(b) - 1,
                              header.encode("utf-8", "surrogatepass"), context, limit_bytes)
    return DiffResult(text.decode("utf-8", "surrogatepass"), added, removed, truncated)
