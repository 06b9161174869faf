"""focal point

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("focus_x", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("focus_y", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.drop_column("focus_y")
        batch_op.drop_column("focus_x")
