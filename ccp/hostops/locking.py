"""One lock per tenant (flock, so it holds across threads and processes) and the persisted fence token."""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from ccp.hostops.atomic import write_file_atomic
from ccp.hostops.errors import BadRequest, Busy, FenceRejected

FENCE_FILE = "fence.json"


@contextmanager
def tenant_lock(state_dir: Path, wait_s: float = 2.0):
    """Hold the tenant's exclusive lock for the ``with`` body; raises Busy if not free within ``wait_s``."""
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy("another change to this instance is in progress; try again shortly") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def read_fence(state_dir: Path) -> int:
    """Return the newest fence seen for this tenant (0 if none yet)."""
    try:
        return int(json.loads((state_dir / FENCE_FILE).read_bytes())["fence"])
    except FileNotFoundError:
        return 0


def check_and_store_fence(state_dir: Path, fence: object) -> None:
    """Accept ``fence`` if >= the newest seen (and persist it); call with the tenant lock held.

    Raises BadRequest for a non-integer and FenceRejected for an older token (a superseded upgrade).
    """
    if isinstance(fence, bool) or not isinstance(fence, int) or fence < 0:
        raise BadRequest("fence must be a non-negative integer")
    newest = read_fence(state_dir)
    if fence < newest:
        raise FenceRejected(f"fence {fence} is older than {newest}, the newest seen for this instance")
    if fence > newest:
        write_file_atomic(state_dir / FENCE_FILE, json.dumps({"fence": fence}).encode())
