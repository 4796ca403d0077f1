"""Run a host command with a deadline, capturing an output tail; the process group is killed on overrun."""
from __future__ import annotations

import codecs
import collections
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

TAIL_BYTES = 16 * 1024
KILL_GRACE_S = 3.0
LINE_MAX = 4096  # a longer run of output without a newline is passed on as it is
_EOF = object()  # the reader's mark: no more output


def run_with_deadline(argv: list[str], cwd: Path, deadline_s: float, *, env: dict | None = None,
                      tail_bytes: int = TAIL_BYTES, on_output: Callable[[str], None] | None = None) -> dict:
    """Run ``argv`` in ``cwd`` (stdin closed, stderr merged into stdout) for at most ``deadline_s`` seconds.

    Returns ``{"ok", "exit_code", "signal", "timed_out", "duration_s", "output_tail"}``. ``ok`` is true only for
    exit status 0 without a signal and within the deadline: a process killed by a signal, or stopped by us at the
    deadline, is a failure even if it then exits 0. On overrun the whole process group gets SIGTERM, then SIGKILL
    after a short grace. Raises OSError if the program cannot be started.

    ``on_output(text)``, when given, is called with the output as it is written, whole lines at a time (a line
    longer than LINE_MAX is passed in pieces), always from the calling thread (so it may use the caller's database
    session or write to its response); the tail is returned as well.
    """
    started = time.monotonic()
    env = scrubbed_env() if env is None else env
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    chunks: collections.deque[bytes] = collections.deque()
    size = [0]
    lines: queue.SimpleQueue[str] | None = queue.SimpleQueue() if on_output else None

    def pump() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            chunks.append(chunk)
            size[0] += len(chunk)
            while size[0] - len(chunks[0]) >= tail_bytes:
                size[0] -= len(chunks.popleft())
            if lines is not None:
                pending += decoder.decode(chunk)
                cut = pending.rfind("\n") + 1 if len(pending) < LINE_MAX else len(pending)
                if cut:
                    lines.put(pending[:cut])
                    pending = pending[cut:]
        if lines is not None:
            if pending := pending + decoder.decode(b"", final=True):
                lines.put(pending)
            lines.put(_EOF)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        if lines is None:
            proc.wait(timeout=max(0.0, deadline_s))
        else:
            _wait_passing_lines(proc, lines, on_output, started + max(0.0, deadline_s))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            proc.wait()
    # A grandchild that left the group may keep the pipe open: do not wait for it forever.
    reader.join(timeout=1.0)
    proc.stdout.close() if not reader.is_alive() else None
    if lines is not None:
        while not lines.empty():
            item = lines.get()
            if item is not _EOF:
                on_output(item)
    code = proc.returncode
    sig = signal.Signals(-code).name if code is not None and code < 0 else None
    tail = b"".join(chunks)[-tail_bytes:].decode("utf-8", "replace")
    return {"ok": code == 0 and not timed_out, "exit_code": code if code is not None and code >= 0 else None,
            "signal": sig, "timed_out": timed_out, "duration_s": round(time.monotonic() - started, 3),
            "output_tail": tail}


def _wait_passing_lines(proc: subprocess.Popen, lines: queue.SimpleQueue, on_output, end: float) -> None:
    """Wait for `proc` until the monotonic time `end`, handing each line the reader queues to `on_output` in this
    thread, until the reader's end-of-output mark; raises subprocess.TimeoutExpired at `end`."""
    while True:
        left = end - time.monotonic()
        if proc.poll() is not None and lines.empty():
            return
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, 0)
        try:
            item = lines.get(timeout=min(left, 0.1))
        except queue.Empty:
            continue
        if item is _EOF:  # the pipe closed: the command is ending (or left a grandchild holding nothing)
            proc.wait(timeout=max(0.0, end - time.monotonic()))
            return
        on_output(item)


def scrubbed_env(extra: dict | None = None) -> dict:
    """The agent's environment without its own settings (CCP_AGENT_*, which hold keys), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCP_AGENT_")}
    return {**env, **(extra or {})}


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
