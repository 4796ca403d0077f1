"""The migration head and the models agree, on SQLite and PostgreSQL; image_tag arrives in its own migration."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory


def test_no_pending_autogenerate_diff(app, db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, db.metadata)
    assert diff == []


def test_history_adds_image_tag_after_initial(app):
    from flask_migrate import Migrate  # noqa: F401 - ensures extension is loaded

    config = app.extensions["migrate"].migrate.get_config()
    script = ScriptDirectory.from_config(config)
    revisions = list(reversed(list(script.walk_revisions())))
    assert [r.revision for r in revisions][:2] == ["0001_initial", "0002_image_tag"]
    initial = open(revisions[0].path).read()
    second = open(revisions[1].path).read()
    assert "image_tag" not in initial and "add_column" in second and "image_tag" in second


def test_0005_drops_credentials_from_saved_agent_urls(app, db):
    """Agent URLs saved before the rule lose their user:password@ part; host, port and path stay."""
    import sqlalchemy as sa
    from flask_migrate import downgrade, upgrade

    downgrade(revision="0004_session_epoch")
    with db.engine.begin() as conn:
        for slug, url in (("creds", "http://ccp:s3cret@10.0.0.5:8765/base"), ("plain", "https://agent.test:8765")):
            conn.execute(sa.text(
                "INSERT INTO instances (slug, name, domain, driver, agent_url, compose_project, is_registered, "
                "template_set, vars, health_urls, agent_capabilities, created_at, updated_at) VALUES (:slug, :slug, "
                "'x.test', 'remote', :url, :slug, false, 'default', '{}', '[]', '[]', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"), {"slug": slug, "url": url})
    upgrade()
    with db.engine.connect() as conn:
        urls = dict(conn.execute(sa.text("SELECT slug, agent_url FROM instances")).all())
    assert urls == {"creds": "http://10.0.0.5:8765/base", "plain": "https://agent.test:8765"}
