"""run_with_deadline passes the output on as it is written: whole lines, in order, in the caller's thread, before
the command ends; the deadline still holds."""

from __future__ import annotations

import sys
import threading
import time

from ccp.hostops.process import LINE_MAX, run_with_deadline

SCRIPT = ("import sys, time\n"
          "print('first', flush=True)\n"
          "sys.stdout.write('sec'); sys.stdout.flush(); time.sleep(0.2)\n"
          "print('ond', flush=True)\n"
          "time.sleep(0.6)\n"
          "sys.stdout.write('last, no newline')\n")


def test_lines_arrive_as_written_in_the_calling_thread(tmp_path):
    seen = []
    t0 = time.monotonic()
    result = run_with_deadline([sys.executable, "-c", SCRIPT], tmp_path, 10,
                               on_output=lambda text: seen.append((text, time.monotonic() - t0,
                                                                   threading.get_ident())))
    assert result["ok"] and result["output_tail"] == "first\nsecond\nlast, no newline"
    assert [text for text, _, _ in seen] == ["first\n", "second\n", "last, no newline"]  # never half a line
    assert {ident for _, _, ident in seen} == {threading.get_ident()}
    assert seen[1][1] < result["duration_s"] - 0.4, "the second line was passed on only when the command ended"


def test_the_deadline_holds_while_lines_are_passed_on(tmp_path):
    seen = []
    script = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)\n"
    result = run_with_deadline([sys.executable, "-c", script], tmp_path, 0.6, on_output=seen.append)
    assert result["timed_out"] and not result["ok"] and 0.6 <= result["duration_s"] < 5
    assert len(seen) >= 3 and set(seen) == {"tick\n"}


def test_a_long_run_without_newline_is_passed_on_in_pieces(tmp_path):
    seen = []
    script = f"import sys\nsys.stdout.write('x' * {3 * LINE_MAX})\n"
    result = run_with_deadline([sys.executable, "-c", script], tmp_path, 10, on_output=seen.append)
    assert result["ok"] and "".join(seen) == "x" * 3 * LINE_MAX and len(seen) >= 2
