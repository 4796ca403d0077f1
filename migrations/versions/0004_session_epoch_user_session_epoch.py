"""users.session_epoch: a logout or a new password ends the user's earlier sessions

Revision ID: 0004_session_epoch
Revises: 0003_rollouts
Create Date: 2026-11-27 03:49:46.439519

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_session_epoch'
down_revision = '0003_rollouts'
branch_labels = None
depends_on = None


def upgrade():
    # (existing users get 0; sessions issued before this carry no epoch and end once: log in again)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))



def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')

