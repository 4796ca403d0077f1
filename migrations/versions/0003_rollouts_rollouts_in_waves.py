"""rollouts in waves: upgrades.rollout_id, rollout skipped/source/error/cancel, one running rollout at a time

Revision ID: 0003_rollouts
Revises: 0002_image_tag
Create Date: 2026-11-27 03:05:42.211045

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_rollouts'
down_revision = '0002_image_tag'
branch_labels = None
depends_on = None


def upgrade():
    # (existing rows get the server defaults; new rows get the model's defaults)
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('skipped', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('source', sa.String(length=20), nullable=False, server_default='api'))
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('uq_rollouts_one_running', ['status'], unique=True, sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))

    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rollout_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_upgrades_rollout_id'), ['rollout_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_upgrades_rollout_id_rollouts'), 'rollouts', ['rollout_id'], ['id'], ondelete='SET NULL')



def downgrade():
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_upgrades_rollout_id_rollouts'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_upgrades_rollout_id'))
        batch_op.drop_column('rollout_id')

    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index('uq_rollouts_one_running', sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('error')
        batch_op.drop_column('source')
        batch_op.drop_column('skipped')

