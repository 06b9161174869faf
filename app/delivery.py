"""Handing completed jobs to their sinks, at least once, from Celery beat.

Each cycle has three steps:

1. schedule: every COMPLETE job not yet delivered gets one ``deliveries`` row
   per sink of its source type (a unique key makes this safe to run twice);
2. attempt: each due row is claimed with a short lease (a conditional
   update, so two deliverers never take the same row), handed to its sink,
   and marked DELIVERED, SUPERSEDED, or given a later retry; a crash leaves
   the lease to expire and the row to be tried again;
3. finish: a job whose rows are all settled gets ``delivered_at``.

Owners with a "keep latest N" setting lose their older media once a newer job
is scheduled.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import rowcount
from app.errors import DeliveryError
from app.models import Delivery, DeliveryStatus, MediaQueue, Status, utcnow
from app.sinks import Sink

if TYPE_CHECKING:
    from app.extension import ImagePipeline

log = logging.getLogger(__name__)

ANY_SOURCE_TYPE = "*"


@dataclass(frozen=True)
class DeliveryPolicy:
    lease_seconds: float = 60.0
    max_attempts: int = 8
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    batch: int = 100


@dataclass(frozen=True)
class CycleReport:
    scheduled: int
    delivered: int
    superseded: int
    retried: int
    failed: int


class Deliverer:
    def __init__(
        self,
        pipeline: ImagePipeline,
        sinks: dict[str, list[Sink]],
        policy: DeliveryPolicy,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.pipeline = pipeline
        self.db = pipeline.db
        self.sinks = sinks
        self.policy = policy
        self.clock = clock

    def sinks_for(self, source_type: str) -> list[Sink]:
        return [
            *self.sinks.get(source_type, []),
            *self.sinks.get(ANY_SOURCE_TYPE, []),
        ]

    def register(self, source_type: str, sink: Sink) -> None:
        self.sinks.setdefault(source_type, []).append(sink)

    def run_once(self) -> CycleReport:
        scheduled = self.schedule()
        outcomes = [self._attempt(delivery_id) for delivery_id in self._due()]
        self.finish()
        return CycleReport(
            scheduled=scheduled,
            delivered=outcomes.count(DeliveryStatus.DELIVERED),
            superseded=outcomes.count(DeliveryStatus.SUPERSEDED),
            retried=outcomes.count(DeliveryStatus.PENDING),
            failed=outcomes.count(DeliveryStatus.FAILED),
        )

    def schedule(self) -> int:
        """Create the missing delivery rows of completed, undelivered jobs."""
        jobs = self._undelivered()
        created = 0
        for job_id, source_type, source_id in jobs:
            sinks = self.sinks_for(source_type)
            created += sum(self._add_delivery(job_id, sink.name) for sink in sinks)
            self.pipeline.prune_owner(source_type, source_id)
        return created

    def finish(self) -> None:
        """Mark delivered the jobs whose deliveries are all settled."""
        pending = exists().where(
            Delivery.job_id == MediaQueue.id,
            Delivery.status == DeliveryStatus.PENDING,
        )
        with self.db.transaction() as session:
            for job_id, source_type, _ in self._undelivered(session):
                if not self.sinks_for(source_type):
                    self._mark_job_delivered(session, job_id)
            session.execute(
                update(MediaQueue)
                .where(
                    MediaQueue.status == Status.COMPLETE,
                    MediaQueue.delivered_at.is_(None),
                    exists().where(Delivery.job_id == MediaQueue.id),
                    ~pending,
                )
                .values(delivered_at=self.clock())
                .execution_options(synchronize_session=False)
            )

    def replay(self, delivery_id: str) -> bool:
        """Send a delivery again on the next cycle, whatever its state."""
        with self.db.transaction() as session:
            result = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(
                    status=DeliveryStatus.PENDING,
                    attempts=0,
                    next_attempt_at=self.clock(),
                    lease_expires_at=None,
                    updated_at=self.clock(),
                )
            )
            return rowcount(result) == 1

    def _undelivered(
        self, session: Session | None = None
    ) -> Sequence[tuple[str, str, str]]:
        query = (
            select(MediaQueue.id, MediaQueue.source_type, MediaQueue.source_id)
            .where(
                MediaQueue.status == Status.COMPLETE, MediaQueue.delivered_at.is_(None)
            )
            .order_by(MediaQueue.updated_at)
            .limit(self.policy.batch)
        )
        if session is not None:
            return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]
        with self.db.transaction() as own:
            return [tuple(row) for row in own.execute(query)]  # type: ignore[misc]

    def _mark_job_delivered(self, session: Session, job_id: str) -> None:
        session.execute(
            update(MediaQueue)
            .where(MediaQueue.id == job_id, MediaQueue.delivered_at.is_(None))
            .values(delivered_at=self.clock())
        )

    def _add_delivery(self, job_id: str, sink: str) -> bool:
        now = self.clock()
        try:
            with self.db.transaction() as session:
                already = session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.job_id == job_id, Delivery.sink == sink)
                )
                if already:
                    return False
                session.add(
                    Delivery(
                        id=str(uuid.uuid4()),
                        job_id=job_id,
                        sink=sink,
                        status=DeliveryStatus.PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    def _due(self) -> list[str]:
        now = self.clock()
        query = (
            select(Delivery.id)
            .where(
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.next_attempt_at <= now,
                (Delivery.lease_expires_at.is_(None))
                | (Delivery.lease_expires_at < now),
            )
            .order_by(Delivery.next_attempt_at)
            .limit(self.policy.batch)
        )
        with self.db.transaction() as session:
            return list(session.scalars(query))

    def _claim(self, delivery_id: str) -> Delivery | None:
        now = self.clock()
        lease = now + timedelta(seconds=self.policy.lease_seconds)
        with self.db.transaction() as session:
            result = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == DeliveryStatus.PENDING,
                    (Delivery.lease_expires_at.is_(None))
                    | (Delivery.lease_expires_at < now),
                )
                .values(attempts=Delivery.attempts + 1, lease_expires_at=lease)
            )
            if rowcount(result) != 1:
                return None
            return session.get_one(Delivery, delivery_id)

    def _attempt(self, delivery_id: str) -> DeliveryStatus | None:
        delivery = self._claim(delivery_id)
        if delivery is None:
            return None
        sink = self._sink_named(delivery.sink)
        job = self.pipeline.get_status(delivery.job_id)
        if sink is None or job is None:
            reason = (
                "Its sink is no longer configured."
                if sink is None
                else "Its job is gone."
            )
            return self._settle(delivery, DeliveryStatus.FAILED, reason)
        try:
            with self.db.transaction() as session:
                applied = sink.deliver(job, delivery.id, session)
                self._record(session, delivery, DeliveryStatus(applied), None)
            return DeliveryStatus(applied)
        except DeliveryError as exc:
            return self._retry_or_fail(delivery, exc.message)
        except Exception:
            log.exception(
                "delivery %s to %s failed unexpectedly", delivery.id, sink.name
            )
            return self._retry_or_fail(delivery, "The sink failed unexpectedly.")

    def _retry_or_fail(self, delivery: Delivery, error: str) -> DeliveryStatus:
        if delivery.attempts >= self.policy.max_attempts:
            return self._settle(delivery, DeliveryStatus.FAILED, error)
        log.warning(
            "delivery %s to %s: attempt %d failed: %s",
            delivery.id,
            delivery.sink,
            delivery.attempts,
            error,
        )
        return self._settle(delivery, DeliveryStatus.PENDING, error)

    def _settle(
        self, delivery: Delivery, status: DeliveryStatus, error: str | None
    ) -> DeliveryStatus:
        with self.db.transaction() as session:
            self._record(session, delivery, status, error)
        return status

    def _record(
        self,
        session: Session,
        delivery: Delivery,
        status: DeliveryStatus,
        error: str | None,
    ) -> None:
        now = self.clock()
        values: dict[str, object] = {
            "status": status,
            "last_error": error,
            "lease_expires_at": None,
            "updated_at": now,
        }
        if status is DeliveryStatus.PENDING:
            values["next_attempt_at"] = now + timedelta(seconds=self._backoff(delivery))
        elif status is not DeliveryStatus.FAILED:
            values["delivered_at"] = now
        session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery.id, Delivery.status == DeliveryStatus.PENDING
            )
            .values(**values)
        )

    def _backoff(self, delivery: Delivery) -> float:
        ceiling = min(
            self.policy.backoff_max,
            self.policy.backoff_base * 2 ** max(delivery.attempts - 1, 0),
        )
        return random.uniform(ceiling / 2, ceiling)

    def _sink_named(self, name: str) -> Sink | None:
        for sinks in self.sinks.values():
            for sink in sinks:
                if sink.name == name:
                    return sink
        return None
