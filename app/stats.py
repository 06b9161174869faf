"""Read-only views of the job table: what the CLI's stats and the metrics show."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from app.db import Database
from app.models import MediaQueue, Status, utcnow


@dataclass(frozen=True)
class JobStats:
    counts: dict[tuple[str, str], int]
    """Jobs by (status, source type)."""
    oldest_pending_age: float | None
    """Seconds since the oldest PENDING job was created; ``None`` if none."""

    def by_status(self) -> dict[str, int]:
        totals: Counter[str] = Counter({status.value: 0 for status in Status})
        for (status, _), count in self.counts.items():
            totals[status] += count
        return dict(totals)

    @property
    def queue_depth(self) -> int:
        """Jobs accepted and not yet claimed by a worker."""
        return self.by_status()[Status.PENDING.value]


def job_stats(db: Database, now: datetime | None = None) -> JobStats:
    now = now or utcnow()
    grouped = select(MediaQueue.status, MediaQueue.source_type, func.count()).group_by(
        MediaQueue.status, MediaQueue.source_type
    )
    oldest = select(func.min(MediaQueue.created_at)).where(
        MediaQueue.status == Status.PENDING
    )
    with db.transaction() as session:
        counts = {
            (Status(status).value, source_type): count
            for status, source_type, count in session.execute(grouped)
        }
        created = session.scalar(oldest)
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=now.tzinfo)
    age = (now - created).total_seconds() if created is not None else None
    return JobStats(counts, age)


def requeue_candidates(
    db: Database, *, failed: bool, stuck: bool, stuck_after: float
) -> list[str]:
    """Ids of FAILED jobs and/or stuck ones (see ``JobStore.requeue``)."""
    now = utcnow()
    conditions = []
    if failed:
        conditions.append(MediaQueue.status == Status.FAILED)
    if stuck:
        conditions.append(
            (MediaQueue.status == Status.PROCESSING)
            & (MediaQueue.lease_expires_at < now)
        )
        conditions.append(
            (MediaQueue.status == Status.PENDING)
            & (MediaQueue.updated_at < now - timedelta(seconds=stuck_after))
        )
    if not conditions:
        return []
    query = (
        select(MediaQueue.id).where(or_(*conditions)).order_by(MediaQueue.created_at)
    )
    with db.transaction() as session:
        return list(session.scalars(query))
