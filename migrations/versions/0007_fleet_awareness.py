"""fleet awareness: scan results per instance, scan runs, scan schedules, notification channels

Revision ID: 0007_fleet_awareness
Revises: 0006_receivers
Create Date: 2026-11-30 04:51:49

Issue #15. `instance_scans` holds what the latest drift scan, update check and agent inventory found on each
instance (one row per instance, read by the fleet page in its one query); `scan_runs` one fan-out of per-instance
jobs (its batched notification is sent when the last job ends); `scan_schedules` the admins' cron expressions, one
per kind, seeded enabled (scans only read); `notification_channels` Apprise URLs (encrypted) with the events each
wants.
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_fleet_awareness'
down_revision = '0006_receivers'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('notification_channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('url_enc', sa.Text(), nullable=False),
    sa.Column('url_hint', sa.String(length=100), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('unreachable_after_s', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('events_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_channels')),
    sa.UniqueConstraint('name', name=op.f('uq_notification_channels_name'))
    )
    op.create_table('scan_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_runs'))
    )
    op.create_table('instance_scans',
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('sync_state', sa.String(length=20), nullable=True),
    sa.Column('drifted_files', sa.JSON(), nullable=False),
    sa.Column('sync_detail', sa.String(length=500), nullable=True),
    sa.Column('drift_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('update_state', sa.String(length=20), nullable=True),
    sa.Column('behind_by', sa.Integer(), nullable=True),
    sa.Column('newest_tag', sa.String(length=128), nullable=True),
    sa.Column('update_detail', sa.String(length=500), nullable=True),
    sa.Column('image_digests', sa.JSON(), nullable=False),
    sa.Column('update_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('agent_facts', sa.JSON(), nullable=False),
    sa.Column('agent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unreachable_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scan_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_instance_scans_instance_id_instances'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scan_run_id'], ['scan_runs.id'], name=op.f('fk_instance_scans_scan_run_id_scan_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('instance_id', name=op.f('pk_instance_scans'))
    )
    with op.batch_alter_table('instance_scans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_scans_sync_state'), ['sync_state'], unique=False)

    op.create_table('scan_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('cron', sa.String(length=100), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['last_run_id'], ['scan_runs.id'], name=op.f('fk_scan_schedules_last_run_id_scan_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_schedules')),
    sa.UniqueConstraint('kind', name=op.f('uq_scan_schedules_kind'))
    )
    schedules = sa.table('scan_schedules', sa.column('kind', sa.String), sa.column('cron', sa.String),
                         sa.column('enabled', sa.Boolean), sa.column('updated_at', sa.DateTime(timezone=True)))
    now = datetime.now(timezone.utc)
    op.bulk_insert(schedules, [
        {'kind': 'drift', 'cron': '0 * * * *', 'enabled': True, 'updated_at': now},
        {'kind': 'updates', 'cron': '30 */6 * * *', 'enabled': True, 'updated_at': now},
        {'kind': 'agents', 'cron': '*/15 * * * *', 'enabled': True, 'updated_at': now},
    ])


def downgrade():
    op.drop_table('scan_schedules')
    with op.batch_alter_table('instance_scans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_scans_sync_state'))

    op.drop_table('instance_scans')
    op.drop_table('scan_runs')
    op.drop_table('notification_channels')
