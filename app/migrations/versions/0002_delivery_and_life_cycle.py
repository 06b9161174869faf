"""delivery and life cycle

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_marks",
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("source_type", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("job_created_at", sa.DateTime(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("sink", "source_type", "source_id"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "DELIVERED",
                "SUPERSEDED",
                "FAILED",
                name="delivery_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["media_queue.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "sink", name="uq_deliveries_job_sink"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_due", ["status", "next_attempt_at"], unique=False
        )

    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("idempotency_key", sa.String(length=255), nullable=True)
        )
        batch_op.add_column(
            sa.Column("content_sha256", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_media_queue_undelivered", ["status", "delivered_at"], unique=False
        )
        batch_op.create_unique_constraint(
            "uq_media_queue_content", ["source_type", "source_id", "content_sha256"]
        )
        batch_op.create_unique_constraint(
            "uq_media_queue_idem", ["source_type", "source_id", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.drop_constraint("uq_media_queue_idem", type_="unique")
        batch_op.drop_constraint("uq_media_queue_content", type_="unique")
        batch_op.drop_index("ix_media_queue_undelivered")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("content_sha256")
        batch_op.drop_column("idempotency_key")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_due")

    op.drop_table("deliveries")
    op.drop_table("delivery_marks")
