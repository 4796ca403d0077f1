"""The diff laid out for reading (ccp.web.diffview): numbers on both sides, the changed part of a line marked,
side-by-side pairs, long diffs deferred. Checked against diffs made by the agent's own engine (ccp.hostops.diff)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from ccp.drivers import FileDiff
from ccp.hostops.diff import unified_diff
from ccp.web.diffview import diff_view, parse_rows, side_by_side


def _diff(old: str, new: str) -> str:
    return unified_diff(old, new, old_label="a/f", new_label="b/f", use_gnu=False).text


def test_rows_are_numbered_per_side_across_hunks():
    old = "".join(f"line {i}\n" for i in range(1, 31))
    new = old.replace("line 3\n", "line three\n").replace("line 25\n", "").replace("line 28\n", "line 28\nextra\n")
    rows = [r for r in parse_rows(_diff(old, new)) if r.kind not in ("file",)]
    assert [r.kind for r in rows][:1] == ["hunk"] and sum(r.kind == "hunk" for r in rows) == 2
    removed = [(r.old_no, r.text) for r in rows if r.kind == "del"]
    added = [(r.new_no, r.text) for r in rows if r.kind == "add"]
    assert removed == [(3, "line 3"), (25, "line 25")]
    assert added == [(3, "line three"), (28, "extra")]


def test_the_changed_part_of_a_line_is_marked_and_unlike_lines_are_not():
    rows = parse_rows(_diff("image: app:v1.2.3\nname: x\n", "image: app:v1.2.4\nsomething else entirely\n"))
    dels = [r for r in rows if r.kind == "del"]
    adds = [r for r in rows if r.kind == "add"]
    assert dels[0].parts == [(False, "image: app:v1.2."), (True, "3")]
    assert adds[0].parts == [(False, "image: app:v1.2."), (True, "4")]
    assert adds[1].parts == [(False, "something else entirely")]  # too different: the whole line is the change


def test_side_by_side_pairs_a_block_and_leaves_gaps_empty():
    rows = [r for r in parse_rows(_diff("a\nb\nc\nd\n", "a\nB\nx\ny\nd\n")) if r.kind != "file"]
    pairs = side_by_side(rows)
    kinds = [(left.kind if left else None, right.kind if right else None) for left, right in pairs]
    assert kinds == [("hunk", "hunk"), ("ctx", "ctx"), ("del", "add"), ("del", "add"), (None, "add"), ("ctx", "ctx")]


def test_long_diffs_are_deferred_unless_forced():
    text = _diff("", "".join(f"{i}\n" for i in range(500)))
    entry = FileDiff("big.conf", "created", None, None, 500, 0, text, False)
    assert diff_view(entry).deferred and diff_view(entry).rows == ()
    full = diff_view(entry, force=True)
    assert not full.deferred and full.rows[-1].new_no == 500


_lines = st.lists(st.sampled_from(["a", "b", "c", "", "  indented", "x = 1", "x = 2"]), max_size=25)


@settings(max_examples=200, deadline=None)
@given(old=_lines, new=_lines)
def test_every_numbered_row_is_that_line_of_its_file(old, new):
    old_text = "".join(f"{line}\n" for line in old)
    new_text = "".join(f"{line}\n" for line in new)
    rows = parse_rows(_diff(old_text, new_text))
    for row in rows:
        if row.kind in ("del", "ctx"):
            assert old[row.old_no - 1] == row.text
        if row.kind in ("add", "ctx"):
            assert new[row.new_no - 1] == row.text
    pairs = side_by_side([r for r in rows if r.kind != "file"])
    assert sum(1 for left, _ in pairs if left is not None and left.kind == "del") == sum(r.kind == "del" for r in rows)
    assert sum(1 for _, right in pairs if right is not None and right.kind == "add") == sum(r.kind == "add" for r in rows)
