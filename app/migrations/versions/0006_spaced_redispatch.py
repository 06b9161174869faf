"""spaced redispatch

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("redispatches", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("next_redispatch_at", sa.DateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.drop_column("next_redispatch_at")
        batch_op.drop_column("redispatches")
