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
def test_patch_reproduces_new_file(tmp_path, seed):
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
