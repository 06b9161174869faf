"""The job state machine: every change of a ``MediaQueue`` row happens here.

Each transition is one conditional ``UPDATE``: it names the state the row must
be in (and, while a worker holds the job, the lease token it must carry) and
reports whether it matched. A redelivered or late task therefore finds the
row moved on and does nothing::

    PENDING ──claim──> PROCESSING ──complete──> COMPLETE
       ^                 │  │  └────reject────> REJECTED
       └─release / reap──┘  └──release / reap at the cap──> FAILED

The claim increments ``attempts`` and sets a lease (token and expiry); the
worker renews the lease while it works. The reaper hands expired leases back
to PENDING, or to FAILED once ``attempts`` reaches ``max_attempts``. Only an
operator (``image-pipeline requeue``) takes a FAILED job back to PENDING.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from app.db import Database
from app.models import Media, MediaQueue, Status, utcnow

TRANSITIONS: frozenset[tuple[Status, Status]] = frozenset(
    {
        (Status.PENDING, Status.PROCESSING),
        (Status.PROCESSING, Status.COMPLETE),
        (Status.PROCESSING, Status.REJECTED),
        (Status.PROCESSING, Status.PENDING),
        (Status.PROCESSING, Status.FAILED),
        (Status.FAILED, Status.PENDING),
    }
)

WORKER_LOST = "worker_lost"
MAX_SPACING = 32
"""Longest wait between re-sends of a PENDING job, in grace periods."""


class IllegalTransition(ValueError):
    """A transition the state machine does not have; a programming error."""


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one job, valid while ``token`` is on the row."""

    job_id: str
    token: str
    attempts: int
    max_attempts: int
    source_type: str
    source_id: str
    original_key: str
    focus: tuple[float, float] | None = None


class JobStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def create(
        self,
        job_id: str,
        *,
        source_type: str,
        source_id: str,
        original_key: str,
        original_bytes: int,
        max_attempts: int,
        animated: bool = False,
        idempotency_key: str | None = None,
        content_sha256: str | None = None,
        focus: tuple[float, float] | None = None,
        principal: str | None = None,
    ) -> None:
        """Insert a PENDING job; ``IntegrityError`` if its keys are taken."""
        now = self.clock()
        with self.db.transaction() as session:
            session.add(
                MediaQueue(
                    id=job_id,
                    status=Status.PENDING,
                    source_type=source_type,
                    source_id=source_id,
                    attempts=0,
                    max_attempts=max_attempts,
                    original_key=original_key,
                    original_bytes=original_bytes,
                    animated=animated,
                    idempotency_key=idempotency_key,
                    content_sha256=content_sha256,
                    principal=principal,
                    focus_x=focus[0] if focus else None,
                    focus_y=focus[1] if focus else None,
                    created_at=now,
                    updated_at=now,
                )
            )

    def get(self, job_id: str) -> MediaQueue | None:
        """The job with its media loaded."""
        with self.db.transaction() as session:
            return session.get(
                MediaQueue, job_id, options=[joinedload(MediaQueue.media)]
            )

    def exists(self, job_id: str) -> bool:
        return self.get(job_id) is not None

    def routing(self, job_id: str) -> tuple[int, bool] | None:
        """The job's original size and whether it is animated, for routing."""
        query = select(MediaQueue.original_bytes, MediaQueue.animated).where(
            MediaQueue.id == job_id
        )
        with self.db.transaction() as session:
            row = session.execute(query).first()
            return (row.original_bytes, row.animated) if row else None

    def claim(self, job_id: str, lease_seconds: float) -> Claim | None:
        """Take a PENDING job; ``None`` when it is not PENDING (or absent)."""
        token = str(uuid.uuid4())
        now = self.clock()
        with self.db.transaction() as session:
            moved = _transition(
                session,
                job_id,
                Status.PENDING,
                Status.PROCESSING,
                now,
                where=[MediaQueue.attempts < MediaQueue.max_attempts],
                attempts=MediaQueue.attempts + 1,
                lease_token=token,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
            )
            if not moved:
                return None
            row = session.get_one(MediaQueue, job_id)
            return Claim(
                job_id=job_id,
                token=token,
                attempts=row.attempts,
                max_attempts=row.max_attempts,
                source_type=row.source_type,
                source_id=row.source_id,
                original_key=row.original_key,
                focus=row.focus,
            )

    def renew(self, claim: Claim, lease_seconds: float) -> bool:
        """Extend the lease; ``False`` when the job is no longer this claim's."""
        now = self.clock()
        with self.db.transaction() as session:
            result = session.execute(
                update(MediaQueue)
                .where(
                    MediaQueue.id == claim.job_id,
                    MediaQueue.status == Status.PROCESSING,
                    MediaQueue.lease_token == claim.token,
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            return _matched(result)

    def complete(self, claim: Claim, media: Media) -> bool:
        """Record ``media`` and finish the job, both or neither.

        ``False`` when the claim was fenced off (the lease expired and the job
        went to another worker) or the job already has its media.
        """
        try:
            with self.db.transaction() as session:
                moved = _transition(
                    session,
                    claim.job_id,
                    Status.PROCESSING,
                    Status.COMPLETE,
                    self.clock(),
                    token=claim.token,
                    error=None,
                    error_code=None,
                    **_cleared(),
                )
                if not moved:
                    return False
                media.job_id = claim.job_id
                session.add(media)
        except IntegrityError:
            return False
        return True

    def reject(self, claim: Claim, code: str, message: str) -> bool:
        """End the job REJECTED: its input can never succeed."""
        with self.db.transaction() as session:
            return _transition(
                session,
                claim.job_id,
                Status.PROCESSING,
                Status.REJECTED,
                self.clock(),
                token=claim.token,
                error=message,
                error_code=code,
                **_cleared(),
            )

    def release(self, claim: Claim, code: str, message: str) -> Status | None:
        """Give the job back after a transient error.

        It goes to PENDING for another attempt, or to FAILED when it has had
        ``max_attempts``. Returns the new status, ``None`` when fenced.
        """
        target = (
            Status.FAILED if claim.attempts >= claim.max_attempts else Status.PENDING
        )
        with self.db.transaction() as session:
            moved = _transition(
                session,
                claim.job_id,
                Status.PROCESSING,
                target,
                self.clock(),
                token=claim.token,
                error=message,
                error_code=code,
                **_cleared(),
            )
        return target if moved else None

    def reap_expired(self, limit: int = 100) -> list[str]:
        """Hand back jobs whose lease expired; returns those now PENDING.

        Jobs at the attempt cap end FAILED instead: their worker died with
        them every time, which is what a poison input does.
        """
        now = self.clock()
        with self.db.transaction() as session:
            rows = _lock_batch(
                session,
                self.db.is_postgresql,
                [
                    MediaQueue.status == Status.PROCESSING,
                    MediaQueue.lease_expires_at < now,
                ],
                limit,
            )
            requeued = []
            for row in rows:
                if _reap_one(session, row, now):
                    requeued.append(row.id)
            return requeued

    def stale_pending(self, grace_seconds: float, limit: int = 100) -> list[str]:
        """PENDING jobs no worker took in time, marked as re-dispatched.

        A job is due ``grace_seconds`` after it last changed state, then again
        after twice that, four times, ... (at most :data:`MAX_SPACING` times):
        a job still waiting in a long queue is re-sent a few times, not once
        per grace period for as long as the backlog lasts. The mark is a
        compare-and-set, so a second reaper running at the same time skips
        the jobs the first one took.
        """
        now = self.clock()
        never_resent = MediaQueue.next_redispatch_at.is_(None) & (
            MediaQueue.updated_at < now - timedelta(seconds=grace_seconds)
        )
        due = never_resent | (MediaQueue.next_redispatch_at < now)
        with self.db.transaction() as session:
            rows = _lock_batch(
                session,
                self.db.is_postgresql,
                [MediaQueue.status == Status.PENDING, due],
                limit,
            )
            return [
                row.id
                for row in rows
                if _mark_redispatched(session, row, now, grace_seconds)
            ]

    def requeue(self, job_id: str, stuck_after: float) -> bool:
        """Put a FAILED or stuck job back to PENDING with no attempts counted.

        Stuck means PROCESSING with an expired lease (its worker died and no
        reaper ran), or PENDING untouched for ``stuck_after`` seconds. Returns
        ``False`` for anything else: COMPLETE and REJECTED are final, and a
        job whose worker still holds its lease is left to that worker.
        """
        now = self.clock()
        fresh: dict[str, Any] = {
            "attempts": 0,
            "error": None,
            "error_code": None,
            **_cleared(),
        }
        with self.db.transaction() as session:
            if _transition(
                session, job_id, Status.FAILED, Status.PENDING, now, **fresh
            ) or _transition(
                session,
                job_id,
                Status.PROCESSING,
                Status.PENDING,
                now,
                where=[MediaQueue.lease_expires_at < now],
                **fresh,
            ):
                return True
            result = session.execute(
                update(MediaQueue)
                .where(
                    MediaQueue.id == job_id,
                    MediaQueue.status == Status.PENDING,
                    MediaQueue.updated_at < now - timedelta(seconds=stuck_after),
                )
                .values(
                    updated_at=now, attempts=0, redispatches=0, next_redispatch_at=None
                )
            )
            return _matched(result)


def _mark_redispatched(
    session: Session, row: MediaQueue, now: datetime, grace_seconds: float
) -> bool:
    spacing = grace_seconds * min(2**row.redispatches, MAX_SPACING)
    result = session.execute(
        update(MediaQueue)
        .where(
            MediaQueue.id == row.id,
            MediaQueue.status == Status.PENDING,
            MediaQueue.redispatches == row.redispatches,
        )
        .values(
            redispatches=row.redispatches + 1,
            next_redispatch_at=now + timedelta(seconds=spacing),
        )
    )
    return _matched(result)


def _reap_one(session: Session, row: MediaQueue, now: datetime) -> bool:
    at_cap = row.attempts >= row.max_attempts
    target = Status.FAILED if at_cap else Status.PENDING
    message = (
        f"The worker stopped while processing this image {row.attempts} times."
        if at_cap
        else "The worker stopped while processing this image; retrying."
    )
    moved = _transition(
        session,
        row.id,
        Status.PROCESSING,
        target,
        now,
        token=row.lease_token,
        error=message,
        error_code=WORKER_LOST,
        **_cleared(),
    )
    return moved and target is Status.PENDING


def _lock_batch(
    session: Session,
    postgresql: bool,
    conditions: Sequence[ColumnElement[bool]],
    limit: int,
) -> Sequence[MediaQueue]:
    query = select(MediaQueue).where(*conditions).order_by(MediaQueue.updated_at)
    query = query.limit(limit)
    if postgresql:
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).all()


def _transition(
    session: Session,
    job_id: str,
    source: Status,
    target: Status,
    now: datetime,
    *,
    token: str | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    **values: Any,
) -> bool:
    """Move ``job_id`` from ``source`` to ``target`` if it is still there."""
    if (source, target) not in TRANSITIONS:
        raise IllegalTransition(f"{source} -> {target} is not a job transition.")
    conditions = [MediaQueue.id == job_id, MediaQueue.status == source, *where]
    if token is not None:
        conditions.append(MediaQueue.lease_token == token)
    if target is Status.PENDING:
        values.update(redispatches=0, next_redispatch_at=None)
    result = session.execute(
        update(MediaQueue)
        .where(*conditions)
        .values(status=target, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return _matched(result)


def _cleared() -> dict[str, Any]:
    return {"lease_token": None, "lease_expires_at": None}


def _matched(result: Any) -> bool:
    return bool(result.rowcount == 1)
