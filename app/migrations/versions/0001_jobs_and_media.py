"""jobs and media

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_queue",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "PROCESSING",
                "COMPLETE",
                "REJECTED",
                "FAILED",
                name="job_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("source_type", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("original_key", sa.String(length=255), nullable=False),
        sa.Column("original_bytes", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.create_index(
            "ix_media_queue_owner", ["source_type", "source_id"], unique=False
        )
        batch_op.create_index(
            "ix_media_queue_status_updated", ["status", "updated_at"], unique=False
        )

    op.create_table(
        "media",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("source_type", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("blurhash", sa.String(length=128), nullable=False),
        sa.Column("dominant_color", sa.String(length=7), nullable=False),
        sa.Column("original_format", sa.String(length=16), nullable=False),
        sa.Column("preset", sa.String(length=64), nullable=False),
        sa.Column("preset_version", sa.String(length=32), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["media_queue.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.create_index(
            "ix_media_owner", ["source_type", "source_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index("ix_media_owner")

    op.drop_table("media")
    with op.batch_alter_table("media_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_media_queue_status_updated")
        batch_op.drop_index("ix_media_queue_owner")

    op.drop_table("media_queue")
