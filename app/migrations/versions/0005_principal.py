"""principal

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("principal", sa.String(length=255), nullable=True)
        )
        batch_op.create_index(
            "ix_media_queue_principal", ["principal", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_media_queue_principal")
        batch_op.drop_column("principal")
