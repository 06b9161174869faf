"""animated originals, for routing to the heavy queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "animated", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.drop_column("animated")
