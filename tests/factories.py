"""Small data factories for tests (commit real rows through the services, so validation runs too)."""

from __future__ import annotations

import itertools

_seq = itertools.count(1)


def make_user(username: str | None = None, role: str = "operator", password: str = "correct horse battery"):
    """Create a user through the service; returns (user, password)."""
    from ccp.services.users import create_user

    user = create_user(username or f"user{next(_seq)}", password, role)
    return user, password


def make_instance(**overrides):
    """Create a remote-driver instance with sane defaults through the service."""
    from ccp.services.instances import create_instance

    n = next(_seq)
    data = {
        "slug": f"tenant-{n}", "name": f"Tenant {n}", "domain": f"t{n}.example.test", "driver": "remote",
        "agent_url": "http://127.0.0.1:9", "agent_key_id": "ccp", "agent_key": f"key-{n}-abcdefghijklmnop",
        "compose_project": f"tenant{n}", "is_registered": False, "image_tag": "v1",
    }
    data.update(overrides)
    return create_instance(data, actor="test")
