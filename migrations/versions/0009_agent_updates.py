"""agent updates: agents updated to a new agent version in waves

Revision ID: 0009_agent_updates
Revises: 0008_operator_controls
Create Date: 2026-11-30 08:00:00

Issue #15's agent self-update: agent_rollouts (the target version, the wheel's SHA-256, the waves of agent URLs,
one running at a time) and agent_updates (each agent's progress and outcome).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_agent_updates'
down_revision = '0008_operator_controls'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('agent_rollouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('target_version', sa.String(length=64), nullable=False),
    sa.Column('wheel_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('waves', sa.JSON(), nullable=False),
    sa.Column('current_wave', sa.Integer(), nullable=False),
    sa.Column('deadline_s', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_rollouts'))
    )
    with op.batch_alter_table('agent_rollouts', schema=None) as batch_op:
        batch_op.create_index('uq_agent_rollouts_one_running', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'running'"),
                              postgresql_where=sa.text("status = 'running'"))

    op.create_table('agent_updates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('agent_url', sa.String(length=500), nullable=False),
    sa.Column('slugs', sa.JSON(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('from_version', sa.String(length=64), nullable=True),
    sa.Column('to_version', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['rollout_id'], ['agent_rollouts.id'],
                            name=op.f('fk_agent_updates_rollout_id_agent_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_updates')),
    sa.UniqueConstraint('rollout_id', 'agent_url', name=op.f('uq_agent_updates_rollout_id'))
    )
    with op.batch_alter_table('agent_updates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_updates_rollout_id'), ['rollout_id'], unique=False)


def downgrade():
    with op.batch_alter_table('agent_updates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_updates_rollout_id'))
    op.drop_table('agent_updates')
    with op.batch_alter_table('agent_rollouts', schema=None) as batch_op:
        batch_op.drop_index('uq_agent_rollouts_one_running', sqlite_where=sa.text("status = 'running'"),
                            postgresql_where=sa.text("status = 'running'"))
    op.drop_table('agent_rollouts')
