"""instances.monitor_window_s (a per-tenant health watch); agent URLs lose any user:password@ part

Revision ID: 0005_monitor_window
Revises: 0004_session_epoch
Create Date: 2026-11-30 01:40:00

Agent URLs may no longer carry credentials (the agent authenticates CCP by its signing key; a password in the URL
ended up in pages and error messages). Rows saved before this rule keep their host, port and path; the userinfo is
dropped, which changes nothing for the agent, which never read it.
"""
from urllib.parse import urlsplit, urlunsplit

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_monitor_window'
down_revision = '0004_session_epoch'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monitor_window_s', sa.Integer(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, agent_url FROM instances WHERE agent_url LIKE '%@%'")).fetchall()
    for row_id, url in rows:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        conn.execute(sa.text("UPDATE instances SET agent_url = :url WHERE id = :id"),
                     {"url": urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), "id": row_id})


def downgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('monitor_window_s')
