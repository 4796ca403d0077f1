"""Files for running CCP and its agent as services, shipped inside the package so a pip install has them.

``ccp-web.service``, ``ccp-worker.service``, ``ccp-agent.service``: systemd units (docs/operations.md);
``gunicorn_conf.py``: the web server's settings (``gunicorn -c python:ccp.deploy.gunicorn_conf``);
``agent/``: the light ``ccp-agent`` distribution (its own pyproject, built from this same source tree);
``docker/``: the container images and the compose file.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def deploy_file(name: str) -> Path:
    """The path of a shipped deploy file (e.g. ``ccp-web.service``); raises FileNotFoundError if there is none."""
    path = HERE / name
    if not path.is_file():
        raise FileNotFoundError(f"no deploy file {name!r} in {HERE}")
    return path
