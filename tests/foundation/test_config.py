"""Start-up configuration: bad settings stop with one clear line naming the variable, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccp.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env, needle", [
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://:6379"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://127.0.0.1:notaport"}, "REDIS_URL"),
    ({"CCP_ENV": "staging"}, "CCP_ENV"),
    ({"CCP_ENV": "production"}, "CCP_SECRET_KEY"),
    ({"CCP_MONITOR_WINDOW_S": "soon"}, "CCP_MONITOR_WINDOW_S"),
    ({"CCP_STATUS_REUSE_S": "-1"}, "CCP_STATUS_REUSE_S"),
    ({"CCP_WEBHOOK_SECRET": "short"}, "CCP_WEBHOOK_SECRET"),
])
def test_bad_settings_name_the_variable(env, needle, tmp_path):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"CCP_INSTANCE_DIR": str(tmp_path), **env})
    assert needle in str(err.value)


def test_dev_mode_generates_and_keeps_secrets(tmp_path):
    first = Settings.from_env({"CCP_INSTANCE_DIR": str(tmp_path)})
    first.ensure_generated_secrets()
    second = Settings.from_env({"CCP_INSTANCE_DIR": str(tmp_path)})
    second.ensure_generated_secrets()
    assert first.secret_key and first.secret_key == second.secret_key
    assert first.encryption_keys == second.encryption_keys
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def _run(args, env, timeout=60):
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    full.update(env)
    return subprocess.run(args, env=full, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("env, needle", [
    ({"DATABASE_URL": "bogus://x"}, "configuration error: DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nope"}, "cannot connect to DATABASE_URL"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "cannot connect to REDIS_URL"),
    ({"REDIS_URL": "ftp://127.0.0.1"}, "configuration error: REDIS_URL"),
])
def test_worker_start_fails_with_one_clear_line(env, needle, tmp_path):
    env = {"CCP_INSTANCE_DIR": str(tmp_path), **env}
    result = _run([sys.executable, "-m", "ccp.cli", "worker", "--burst"], env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0] and "Traceback" not in result.stderr


def test_wsgi_module_fails_with_one_clear_line(tmp_path):
    result = _run([sys.executable, "-c", "import app"], {"CCP_INSTANCE_DIR": str(tmp_path), "DATABASE_URL": "x"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "DATABASE_URL" in result.stderr


def test_proxy_hops_makes_forwarded_tls_visible(app_env):
    from ccp.app import create_app

    app = create_app({"environ": {**app_env, "CCP_PROXY_HOPS": "1"}})
    resp = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in resp.headers
    plain = create_app({"environ": app_env}).test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in plain.headers


PRODUCTION = {"CCP_ENV": "production", "CCP_SECRET_KEY": "s" * 32,
              "CCP_ENCRYPTION_KEYS": "yPz3Yq2R0Hq1mC6sZ1rU0cI0mXbq0aB1cD2eF3gH4iA="}


def _run_clean(args, env, tmp_path):
    """Run with a clean environment (no inherited CCP_*/DATABASE_URL/REDIS_URL) and a permissive umask."""
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", **env}
    return subprocess.run(args, env=full, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          preexec_fn=lambda: os.umask(0o022))


def test_production_sqlite_creates_a_missing_instance_folder_0700_and_the_database_0600(tmp_path):
    instance = tmp_path / "var" / "ccp"
    result = _run_clean([sys.executable, "-m", "ccp.cli", "db", "upgrade"],
                        {**PRODUCTION, "CCP_INSTANCE_DIR": str(instance)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert oct(instance.stat().st_mode & 0o777) == "0o700"
    assert oct((instance / "ccp.db").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in instance.iterdir()) == ["ccp.db"], "production generates no keys"
    # SQLite gives its -journal/-wal/-shm files the database file's mode: check the WAL ones once.
    import sqlite3

    conn = sqlite3.connect(instance / "ccp.db")
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE probe (x)")
    extra = {p.name: oct(p.stat().st_mode & 0o777) for p in instance.iterdir() if p.name != "ccp.db"}
    conn.close()
    assert extra and set(extra.values()) == {"0o600"}, extra


@pytest.mark.parametrize("where, needle", [
    ("instance", "CCP_INSTANCE_DIR"),  # below a regular file: cannot be created, even by root
    ("database", "DATABASE_URL"),
])
def test_an_uncreatable_folder_stops_with_one_line_naming_the_variable(tmp_path, where, needle):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**PRODUCTION, "CCP_INSTANCE_DIR": str(blocker / "instance")}
    if where == "database":
        env = {**PRODUCTION, "CCP_INSTANCE_DIR": str(tmp_path / "instance"),
               "DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'ccp.db'}"}
    result = _run_clean([sys.executable, "-m", "ccp.cli", "db", "upgrade"], env, tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_production_with_servers_only_needs_no_instance_folder(tmp_path):
    settings = Settings.from_env({**PRODUCTION, "CCP_INSTANCE_DIR": str(tmp_path / "unused"),
                                  "DATABASE_URL": "postgresql://ccp@db.internal/ccp",
                                  "REDIS_URL": "redis://redis.internal:6379/0"})
    settings.ensure_generated_secrets()
    assert not (tmp_path / "unused").exists()


def test_an_existing_database_file_keeps_its_mode(tmp_path):
    db_file = tmp_path / "ccp.db"
    db_file.touch(mode=0o640)
    db_file.chmod(0o640)
    Settings.from_env({"CCP_INSTANCE_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{db_file}"}
                      ).ensure_generated_secrets()
    assert oct(db_file.stat().st_mode & 0o777) == "0o640"
