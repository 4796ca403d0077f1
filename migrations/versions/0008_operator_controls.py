"""operator controls: maintenance windows and holds, release history, rollback targets, backups

Revision ID: 0008_operator_controls
Revises: 0007_fleet_awareness
Create Date: 2026-11-30 07:40:00

Issue #16. Instances get a maintenance window (cron start, minutes, time zone) and a hold (reason, until, by);
upgrades record what a release put on the tenant (set name and version, rendered file hashes), the earlier upgrade
a "roll back to this release" returns to, and the id of the data backup taken before it; rollouts get a kind
("release" or "rollback") and the rollout a rollback undoes.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_operator_controls'
down_revision = '0007_fleet_awareness'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('window_cron', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('window_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('window_timezone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hold_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('hold_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('hold_by', sa.String(length=200), nullable=True))

    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('set_name', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('set_version', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('file_hashes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('rollback_of', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('backup_id', sa.String(length=100), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_upgrades_rollback_of_upgrades'), 'upgrades', ['rollback_of'],
                                    ['id'], ondelete='SET NULL')

    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='release', nullable=False))
        batch_op.add_column(sa.Column('rollback_of', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_rollouts_rollback_of_rollouts'), 'rollouts', ['rollback_of'],
                                    ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_rollouts_rollback_of_rollouts'), type_='foreignkey')
        batch_op.drop_column('rollback_of')
        batch_op.drop_column('kind')

    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_upgrades_rollback_of_upgrades'), type_='foreignkey')
        batch_op.drop_column('backup_id')
        batch_op.drop_column('rollback_of')
        batch_op.drop_column('file_hashes')
        batch_op.drop_column('set_version')
        batch_op.drop_column('set_name')

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('hold_by')
        batch_op.drop_column('hold_until')
        batch_op.drop_column('hold_reason')
        batch_op.drop_column('window_timezone')
        batch_op.drop_column('window_minutes')
        batch_op.drop_column('window_cron')
