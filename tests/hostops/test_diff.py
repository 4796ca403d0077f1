"""Diff correctness: GNU patch applied to the old file with our diff reproduces the new file."""
import random
from itertools import pairwise
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccp.hostops import diff as diffmod
from ccp.hostops.diff import split_lines, unified_diff

pytestmark = pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch not installed")

VOCAB = ["services:", "  web:", "    image: app:${IMAGE_TAG:-latest}", "    restart: unless-stopped", "", "x",
         "    environment:", "      - KEY=value", "  db:", "# comment", "\ttabbed", "trailing  "]


def _random_text(rng, n):
    lines = [rng.choice(VOCAB) if rng.random() < 0.8 else f"unique {rng.random()}" for _ in range(n)]
    text = "\n".join(lines)
    return text + "\n" if rng.random() < 0.8 else text


def _mutate(rng, text):
    lines = text.split("\n")
    for _ in range(rng.randint(0, 12)):
        op = rng.random()
        i = rng.randrange(len(lines) + 1)
        if op < 0.3 and i < len(lines):
            del lines[i]
        elif op < 0.6:
            lines.insert(i, rng.choice(VOCAB))
        elif i < len(lines):
            lines[i] = f"changed {rng.random()}"
    out = "\n".join(lines)
    if rng.random() < 0.15:
        out = out.rstrip("\n") if out.endswith("\n") else out + "\n"
    return out


def _apply_patch(tmp_path, old, diff_text):
    (tmp_path / "old").write_bytes(old.encode())
    (tmp_path / "p.diff").write_bytes(diff_text.encode())
    out = tmp_path / "out"
    proc = subprocess.run(["patch", "-s", "-o", str(out), str(tmp_path / "old"), str(tmp_path / "p.diff")],
                          capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out.read_bytes().decode()


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("engine", ["default", "gnu"])
def test_patch_reproduces_new_file(tmp_path, request, seed, engine):
    if engine == "gnu":  # GNU's own text, its counts derived from the removed lines and the line-count growth
        request.getfixturevalue("force_gnu")
    rng = random.Random(seed)
    old = _random_text(rng, rng.randint(0, 80))
    new = _mutate(rng, old) if old else _random_text(rng, 5)
    result = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=10**9)
    if old == new:
        assert result.text == "" and result.added == result.removed == 0
        return
    assert _apply_patch(tmp_path, old, result.text) == new
    assert result.added == sum(1 for ln in result.text.splitlines() if ln.startswith("+") and ln[:3] != "+++")
    assert result.removed == sum(1 for ln in result.text.splitlines() if ln.startswith("-") and ln[:3] != "---")


@pytest.mark.parametrize("use_gnu", [True, False])
@pytest.mark.parametrize("shown", [False, True], ids=["gnu-text", "masked-gnu-ranges"])
def test_large_repetitive_pair_both_engines(tmp_path, monkeypatch, use_gnu, shown):
    rng = random.Random(7)
    old_lines = [VOCAB[i % 5] for i in range(5000)]
    new_lines = list(old_lines)
    for _ in range(150):
        new_lines.insert(rng.randrange(len(new_lines)), rng.choice(VOCAB))
        del new_lines[rng.randrange(len(new_lines))]
    old, new = "\n".join(old_lines) + "\n", "\n".join(new_lines) + "\n"
    calls = []
    real = diffmod._run_gnu
    monkeypatch.setattr(diffmod, "_run_gnu", lambda o, n, args, timeout: calls.append(args) or real(o, n, args, timeout))
    show = {"show_old": old_lines, "show_new": new_lines} if shown else {}
    result = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=10**9, use_gnu=use_gnu, **show)
    assert bool(calls) == (use_gnu and shutil.which("diff") is not None)
    if calls:  # shown lines: GNU gives only its ranges, the text is rendered here from the shown lines
        assert any(arg == "--unchanged-group-format=" for arg in calls[0]) == shown
    assert _apply_patch(tmp_path, old, result.text) == new


def test_gnu_timeout_falls_back_to_in_process_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(diffmod, "GNU_DIFF_TIMEOUT_S", 0.000001)
    monkeypatch.setattr(diffmod, "GNU_DIFF_MIN_CELLS", 0)
    old, new = "a\nb\nc\n" * 50, "a\nc\nb\n" * 50
    result = unified_diff(old, new, old_label="a/f", new_label="b/f")
    assert _apply_patch(tmp_path, old, result.text) == new


def test_huge_region_is_split_and_still_correct(tmp_path, monkeypatch):
    monkeypatch.setattr(diffmod, "MAX_LCS_CELLS", 1000)
    monkeypatch.setattr(diffmod, "CHUNK_CELLS", 300)
    rng = random.Random(3)
    old = "\n".join(rng.choice("abc") for _ in range(300)) + "\n"
    new = "\n".join(rng.choice("abc") for _ in range(280)) + "\nuniq\n"
    result = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=10**9, use_gnu=False)
    assert _apply_patch(tmp_path, old, result.text) == new


def test_truncation_flags_and_keeps_counts():
    old = "".join(f"line {i}\n" for i in range(2000))
    new = "".join(f"LINE {i}\n" for i in range(2000))
    result = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=4096)
    assert result.truncated and len(result.text.encode()) <= 4096
    assert result.added == 2000 and result.removed == 2000


def test_show_lines_replace_printed_text_only():
    old, new = "A=1\nB=2\n", "A=1\nB=3\n"
    masked = ["A=***", "B=***"]
    result = unified_diff(old, new, old_label="a", new_label="b", show_old=masked, show_new=masked)
    assert "2" not in result.text.split("@@")[-1] and "3" not in result.text.split("@@")[-1]
    assert "-B=***" in result.text and "+B=***" in result.text


def test_split_lines_only_on_lf():
    assert split_lines("a\r\nb\x0bc\u2028d\n") == (["a\r", "b\x0bc\u2028d"], True)
    assert split_lines("")[0] == []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(old=st.lists(st.sampled_from("abcdef"), max_size=30), new=st.lists(st.sampled_from("abcdef"), max_size=30))
def test_removed_lines_come_before_added_lines_like_diff_u(old, new):
    """Within a change, `diff -u`, git and GitHub print every - line before the + lines that replace them."""
    text = unified_diff("".join(f"{x}\n" for x in old), "".join(f"{x}\n" for x in new), old_label="a",
                        new_label="b").text
    body = [line for line in text.split("\n")[2:] if line and not line.startswith("@@")]
    assert not any(prev.startswith("+") and line.startswith("-") for prev, line in pairwise(body))


def _lines(n, salt=""):
    return [f"{salt}line {i:05d} value={i * 7919 % 10007}" for i in range(n)]


def _gnu_u(tmp_path, old, new):
    """GNU diff -u's own bytes for the pair, with our labels."""
    (tmp_path / "o").write_bytes(old.encode())
    (tmp_path / "n").write_bytes(new.encode())
    proc = subprocess.run(["diff", "-a", "-u", "--label", "a/f", "--label", "b/f", str(tmp_path / "o"),
                           str(tmp_path / "n")], capture_output=True, timeout=20, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.decode()


def _edge_pairs():
    lines = _lines(300)
    dense = [f"{x} edited" if i % 5 == 0 else x for i, x in enumerate(lines)]
    mixed = [x + ("\r" if i % 3 else "") for i, x in enumerate(lines)]
    flipped = [x[:-1] if x.endswith("\r") and i % 7 == 0 else x + "\r" if i % 11 == 0 else x
               for i, x in enumerate(mixed)]
    long_lines = [f"{i}:" + "abcdefghij" * 2000 for i in range(20)]
    long_new = list(long_lines)
    for i in (3, 15):
        long_new[i] = long_new[i][:10000] + "#" + long_new[i][10001:]
    edited = list(lines)
    edited[10] += " edited"
    one = "".join(f'{{"id":{i},"v":"x{i}"}},' for i in range(60000))
    return {
        "crlf-throughout": ("\r\n".join(lines) + "\r\n", "\r\n".join(dense) + "\r\n"),
        "lf-to-crlf": ("\n".join(lines) + "\n", "\r\n".join(lines) + "\r\n"),
        "mixed-endings-flipped": ("\n".join(mixed) + "\n", "\n".join(flipped) + "\n"),
        "final-newline-removed": ("\n".join(lines) + "\n", "\n".join(lines)),
        "final-newline-added": ("\n".join(lines), "\n".join(lines) + "\n"),
        "final-newline-removed-and-edit": ("\n".join(lines) + "\n", "\n".join(edited)),
        "no-eol-both-last-changed": ("\n".join(lines), "\n".join(lines[:-1] + ["last"])),
        "no-eol-both-edit-and-last-changed": ("\n".join(lines), "\n".join(edited[:-1] + ["last"])),
        "no-eol-crlf-last-line": ("\r\n".join(lines) + "\r", "\r\n".join(dense) + "\r"),
        "long-lines-20kB": ("\n".join(long_lines) + "\n", "\n".join(long_new) + "\n"),
        "one-1MB-line-one-char": (one, one[:500000] + "X" + one[500001:]),
        "nul-bytes": ("a\0b\nc\n\0\n" * 50, "a\0b\nC\n\0\n" * 50),
    }


GNU_SEARCHED = {"crlf-throughout", "mixed-endings-flipped", "final-newline-removed-and-edit",
                "no-eol-both-edit-and-last-changed", "no-eol-crlf-last-line", "long-lines-20kB", "nul-bytes"}


@pytest.fixture
def force_gnu(monkeypatch):
    """Any difference goes to GNU diff first (its own text when nothing is masked)."""
    for name in ("GNU_DIFF_MIN_CELLS", "GNU_START_S", "GNU_S_PER_BYTE"):
        monkeypatch.setattr(diffmod, name, 0)


@pytest.mark.skipif(shutil.which("diff") is None, reason="GNU diff not installed")
@pytest.mark.parametrize("case", list(_edge_pairs()))
@pytest.mark.parametrize("engine", ["in-process", "gnu"])
def test_edge_shapes_match_gnu_hunks_and_apply(tmp_path, request, monkeypatch, case, engine):
    """CR stays part of its line, a missing final newline is marked, long lines are whole lines: on inputs with
    one right answer both engines print exactly GNU diff -u's text, and patch reproduces the new file byte for byte."""
    calls = []
    if engine == "gnu":
        request.getfixturevalue("force_gnu")
        real = diffmod._run_gnu
        monkeypatch.setattr(diffmod, "_run_gnu", lambda *args: calls.append(1) or real(*args))
    old, new = _edge_pairs()[case]
    result = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=10**9, use_gnu=engine == "gnu")
    # Where the changed region shares no line between the sides (a wholesale replacement) nothing is searched.
    assert bool(calls) == (engine == "gnu" and case in GNU_SEARCHED)
    assert result.text == _gnu_u(tmp_path, old, new)
    assert _apply_patch(tmp_path, old, result.text) == new
    body = result.text.split("\n")[2:]
    assert result.removed == sum(1 for ln in body if ln.startswith("-"))
    assert result.added == sum(1 for ln in body if ln.startswith("+"))


@pytest.mark.skipif(shutil.which("diff") is None, reason="GNU diff not installed")
@pytest.mark.parametrize("limit", [0, 300, 2000, 5000, 10**9])
def test_gnu_text_is_cut_like_ours(force_gnu, limit):
    """GNU's text cut at the limit keeps whole hunks and whole-diff counts, exactly as the in-process rendering."""
    lines = _lines(2000)
    new = [f"{x} edited" if i % 40 == 0 else x for i, x in enumerate(lines)]
    old_text, new_text = "\n".join(lines) + "\n", "\n".join(new) + "\n"
    ours = unified_diff(old_text, new_text, old_label="a/f", new_label="b/f", limit_bytes=limit, use_gnu=False)
    gnu = unified_diff(old_text, new_text, old_label="a/f", new_label="b/f", limit_bytes=limit)
    assert gnu == ours
    assert (ours.added, ours.removed) == (50, 50) and ours.truncated == (limit < 10**9)


def test_masked_lines_never_come_from_gnu_text(force_gnu, monkeypatch):
    """A masked (.env) diff is rendered from the shown lines, whichever engine found the changes: GNU prints only
    ranges, so no secret reaches the text even for a large file."""
    calls = []
    real = diffmod._run_gnu
    monkeypatch.setattr(diffmod, "_run_gnu", lambda o, n, args, timeout: calls.append(args) or real(o, n, args, timeout))
    old_lines = [f"KEY_{i}=secret-old-{i}" for i in range(3000)]
    new_lines = [f"KEY_{i}=secret-new-{i}" if i % 9 == 0 else x for i, x in enumerate(old_lines)]
    shown_old = [x.split("=")[0] + "=********" for x in old_lines]
    shown_new = [x.split("=")[0] + "=********" for x in new_lines]
    result = unified_diff("\n".join(old_lines) + "\n", "\n".join(new_lines) + "\n", old_label="a/.env",
                          new_label="b/.env", limit_bytes=10**9, show_old=shown_old, show_new=shown_new)
    assert "secret" not in result.text and result.added == result.removed == 334
    assert "-KEY_9=********\n+KEY_9=********\n" in result.text
    if shutil.which("diff"):
        assert calls and all("-U3" not in args for args in calls)


@pytest.mark.skipif(shutil.which("diff") is None, reason="GNU diff not installed")
def test_a_label_gnu_cannot_take_is_rendered_here(force_gnu):
    old, new = "a\nb\nc\n", "a\nB\nc\n"
    result = unified_diff(old, new, old_label="a/odd\0name", new_label="b/f")
    assert result.text.startswith("--- a/odd\0name\n+++ b/f\n@@ -1,3 +1,3 @@\n")


def test_junk_slices_of_a_huge_region_become_one_replacement(tmp_path, monkeypatch):
    """Past the LCS engine's matrix, a huge region without anchors is cut into slices; a slice whose edit script
    alternates every few lines is one replacement (bounded runs), a slice with a few edits keeps them."""
    monkeypatch.setattr(diffmod, "MAX_LCS_CELLS", 1000)
    monkeypatch.setattr(diffmod, "CHUNK_CELLS", 300)
    rng = random.Random(5)
    old = "".join(rng.choice("ab") + "\n" for _ in range(400))
    new = "".join(rng.choice("ab") + "\n" for _ in range(400))
    junk = unified_diff(old, new, old_label="a/f", new_label="b/f", limit_bytes=10**9, use_gnu=False)
    assert _apply_patch(tmp_path, old, junk.text) == new
    assert junk.text.count("@@ -") == 1 and junk.removed > 300
    lines = old.splitlines()
    for i in (50, 200, 350):
        lines[i] = "c"
    edited = "\n".join(lines) + "\n"
    few = unified_diff(old, edited, old_label="a/f", new_label="b/f", limit_bytes=10**9, use_gnu=False)
    assert _apply_patch(tmp_path, old, few.text) == edited
    assert few.removed == few.added == 3 and few.text.count("@@ -") == 3


@pytest.mark.skipif(shutil.which("diff") is None, reason="GNU diff not installed")
def test_lone_surrogates_cross_gnu_unchanged(force_gnu, monkeypatch):
    """Content sent as JSON may hold lone surrogates: they reach GNU diff and come back as they were."""
    outputs = []
    real = diffmod._run_gnu
    monkeypatch.setattr(diffmod, "_run_gnu", lambda *args: outputs.append(real(*args)) or outputs[-1])
    old, new = "a\n\ud800x\nk\n\udfffz\nb\n", "a\n\ud800y\nk\n\udfffw\nb\n"
    via_gnu = unified_diff(old, new, old_label="a/f", new_label="b/f")
    assert outputs and outputs[0] is not None
    assert via_gnu == unified_diff(old, new, old_label="a/f", new_label="b/f", use_gnu=False)
    assert "-\ud800x\n+\ud800y\n k\n-\udfffz\n+\udfffw\n" in via_gnu.text
