"""release intake: receivers, deliveries with their decision, the image digest on rollouts and upgrades

Revision ID: 0006_receivers
Revises: 0005_monitor_window
Create Date: 2026-12-02 09:00:00

Receivers are where forges and registries send release events (issue #14). Every delivery now records what became
of it (decision + reason), what it named (repository, tag, digest), the receiver it came through and, for a replay,
the delivery it replays. A rollout and each of its upgrades keep the image digest the tag resolved to
(image_digest). Existing CI deliveries keep their status; their decision is derived from it (accepted -> started,
rejected -> rejected).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_receivers'
down_revision = '0005_monitor_window'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('receivers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('secret_enc', sa.Text(), nullable=True),
    sa.Column('secret_sha256', sa.String(length=64), nullable=True),
    sa.Column('repository', sa.String(length=255), nullable=False),
    sa.Column('image', sa.String(length=255), nullable=False),
    sa.Column('registry_username', sa.String(length=200), nullable=True),
    sa.Column('registry_password_enc', sa.Text(), nullable=True),
    sa.Column('instances', sa.JSON(), nullable=False),
    sa.Column('semver_range', sa.String(length=200), nullable=True),
    sa.Column('tag_include', sa.String(length=200), nullable=True),
    sa.Column('tag_exclude', sa.String(length=200), nullable=True),
    sa.Column('min_age_s', sa.Integer(), nullable=True),
    sa.Column('canary', sa.Integer(), nullable=False),
    sa.Column('wave_size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receivers')),
    sa.UniqueConstraint('name', name=op.f('uq_receivers_name'))
    )

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('receiver_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('decision', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('repository', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('tag', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('digest', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('replay_of', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_webhook_deliveries_receiver_id_receivers'), 'receivers',
                                    ['receiver_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_webhook_deliveries_replay_of_webhook_deliveries'),
                                    'webhook_deliveries', ['replay_of'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_webhook_deliveries_receiver_decision', ['receiver_id', 'decision'], unique=False)

    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_digest', sa.String(length=100), nullable=True))

    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_digest', sa.String(length=100), nullable=True))

    for status, decision in (("accepted", "started"), ("rejected", "rejected")):
        op.execute(sa.text("UPDATE webhook_deliveries SET decision = :decision, decided_at = received_at "
                           "WHERE status = :status").bindparams(decision=decision, status=status))


def downgrade():
    with op.batch_alter_table('upgrades', schema=None) as batch_op:
        batch_op.drop_column('image_digest')

    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_column('image_digest')

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_receiver_decision')
        batch_op.drop_constraint(batch_op.f('fk_webhook_deliveries_replay_of_webhook_deliveries'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_webhook_deliveries_receiver_id_receivers'), type_='foreignkey')
        batch_op.drop_column('decided_at')
        batch_op.drop_column('replay_of')
        batch_op.drop_column('digest')
        batch_op.drop_column('tag')
        batch_op.drop_column('repository')
        batch_op.drop_column('reason')
        batch_op.drop_column('decision')
        batch_op.drop_column('receiver_id')

    op.drop_table('receivers')
