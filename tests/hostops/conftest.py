"""Shared fixtures: a small tenant install dir and a TenantHost over it."""
import pytest

from ccp.hostops.tenant import TenantHost

COMPOSE = "services:\n  web:\n    image: app:${IMAGE_TAG:-latest}\n"
ENV = "# tenant settings\nIMAGE_TAG=1.0.0\nDB_PASSWORD=supersecretvalue\n"


@pytest.fixture
def install_dir(tmp_path):
    root = tmp_path / "tenant"
    (root / "nginx").mkdir(parents=True)
    (root / "docker-compose.yml").write_text(COMPOSE)
    (root / ".env").write_text(ENV)
    (root / ".env").chmod(0o640)
    (root / "nginx" / "site.conf").write_text("server { listen 80; }\n")
    return root


@pytest.fixture
def host(install_dir, tmp_path):
    return TenantHost(install_dir, "acme", state_dir=tmp_path / "state", snapshot_keep=3)
