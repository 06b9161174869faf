"""The two records of the service, in SQLAlchemy 2's typed form.

``MediaQueue`` is the status of record of one upload; ``Media`` exists once
per completed job (``job_id`` is unique, so a job can never gain a second
one). Variant URLs are not stored: they are derived from the storage keys and
``PUBLIC_MEDIA_URL`` when read, so moving the media host needs no migration.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Status(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETE = "COMPLETE"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETE, Status.REJECTED, Status.FAILED})


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back as aware UTC.

    SQLite keeps no time zone, so the column type does the conversion for
    every database alike.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"Naive datetime {value!r}; pass an aware UTC time.")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class MediaQueue(Base):
    __tablename__ = "media_queue"
    __table_args__ = (
        Index("ix_media_queue_status_updated", "status", "updated_at"),
        Index("ix_media_queue_owner", "source_type", "source_id"),
        Index("ix_media_queue_undelivered", "status", "delivered_at"),
        Index("ix_media_queue_principal", "principal", "status"),
        UniqueConstraint(
            "source_type", "source_id", "idempotency_key", name="uq_media_queue_idem"
        ),
        UniqueConstraint(
            "source_type", "source_id", "content_sha256", name="uq_media_queue_content"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[Status] = mapped_column(
        Enum(
            Status,
            name="job_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            validate_strings=True,
        )
    )
    source_type: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255))
    principal: Mapped[str | None] = mapped_column(String(255))
    """Who uploaded it, when authentication is on; owns the job and its media."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(32))
    original_key: Mapped[str] = mapped_column(String(255))
    original_bytes: Mapped[int] = mapped_column(Integer)
    animated: Mapped[bool] = mapped_column(Boolean, default=False)
    """The original's header announces several frames (see ``app.routing``)."""
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None]
    redispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Times the reaper re-sent this PENDING job since it last changed state."""
    next_redispatch_at: Mapped[datetime | None]
    """When the reaper may re-send it again; null: ``updated_at`` + grace."""
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    """The client's ``Idempotency-Key``: one job per key and owner."""
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    """Set only where the source type deduplicates identical uploads."""
    delivered_at: Mapped[datetime | None]
    """When every sink of the job's source type had it; null until then."""
    focus_x: Mapped[float | None]
    focus_y: Mapped[float | None]
    """A focal point for square crops, as shares (0-1) of width and height."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    media: Mapped[Media | None] = relationship(back_populates="job", lazy="raise")

    @property
    def focus(self) -> tuple[float, float] | None:
        if self.focus_x is None or self.focus_y is None:
            return None
        return self.focus_x, self.focus_y


class Media(Base):
    __tablename__ = "media"
    __table_args__ = (
        Index("ix_media_owner", "source_type", "source_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("media_queue.id", ondelete="CASCADE"), unique=True
    )
    source_type: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    blurhash: Mapped[str] = mapped_column(String(128))
    dominant_color: Mapped[str] = mapped_column(String(7))
    original_format: Mapped[str] = mapped_column(String(16))
    preset: Mapped[str] = mapped_column(String(64))
    preset_version: Mapped[str] = mapped_column(String(32))
    variants: Mapped[dict[str, Any]]
    """``{"sm": {"key", "width", "height", "format", "bytes"}, ...}``."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[MediaQueue] = relationship(back_populates="media", lazy="raise")


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    SUPERSEDED = "SUPERSEDED"
    """A newer job of the same owner was delivered first; nothing to do."""
    FAILED = "FAILED"


class Delivery(Base):
    """One job handed to one sink: the delivery log, and its retry state."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("job_id", "sink", name="uq_deliveries_job_sink"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("media_queue.id", ondelete="CASCADE")
    )
    sink: Mapped[str] = mapped_column(String(64))
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(
            DeliveryStatus,
            name="delivery_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            validate_strings=True,
        )
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryMark(Base):
    """The newest job a sink has applied for one owner.

    Updating it is a compare-and-set that also locks the owner's row, so an
    older job that completes late can never overwrite a newer one's value.
    """

    __tablename__ = "delivery_marks"

    sink: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    job_created_at: Mapped[datetime]
    job_id: Mapped[str] = mapped_column(String(36))
