"""Allow-listed tenant scripts (the tenant's own upgrade scripts), run with a deadline."""
from __future__ import annotations

import os
from pathlib import Path

from ccp.hostops.errors import BadRequest, NotFound
from ccp.hostops.paths import resolve_inside
from ccp.hostops.process import run_with_deadline, scrubbed_env

ALLOWED_SCRIPTS = {"upgrade": "scripts/upgrade.sh", "image-upgrade": "scripts/image-upgrade.sh"}


def run_script(install_dir: Path, project: str, name: str, deadline_s: float, on_output=None) -> dict:
    """Run the allow-listed script ``name`` from the install dir; returns the run_with_deadline dict (its output
    also passed to ``on_output`` as it is written, when given).

    Executable scripts run directly (their shebang decides); others through ``/bin/sh``. Raises BadRequest for a
    name not on the list, NotFound if the tenant has no such script, PathRefused if it is a symlink leaving the
    install dir.
    """
    if name not in ALLOWED_SCRIPTS:
        raise BadRequest(f"script {name!r} is not allowed; allowed: {', '.join(ALLOWED_SCRIPTS)}")
    path = resolve_inside(install_dir, ALLOWED_SCRIPTS[name])
    if not path.is_file():
        raise NotFound(f"this instance has no {ALLOWED_SCRIPTS[name]}")
    argv = [str(path)] if os.access(path, os.X_OK) else ["/bin/sh", str(path)]
    env = scrubbed_env({"COMPOSE_PROJECT_NAME": project})
    try:
        return run_with_deadline(argv, install_dir, deadline_s, env=env, on_output=on_output)
    except OSError as exc:
        raise BadRequest(f"cannot run {ALLOWED_SCRIPTS[name]}: {exc.strerror}") from exc
