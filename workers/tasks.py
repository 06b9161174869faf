"""Celery tasks. They take ids, reload from the database, and log one line.

Nothing here runs at import: the tasks are ``shared_task`` and find the
pipeline through the Flask app context their task class provides.
"""

from __future__ import annotations

import logging
import time

from celery import Task, shared_task
from flask import current_app

from app.extension import ImagePipeline
from app.orphans import collect
from app.processing import Outcome
from workers import COLLECT_TASK, PROCESS_TASK, REAP_TASK

log = logging.getLogger(__name__)

MISSING_RETRIES = 5
"""Tries, 0.5 s apart and growing, for a job whose row is not visible yet."""

_LEVELS = {
    Outcome.COMPLETE: logging.INFO,
    Outcome.REJECTED: logging.INFO,
    Outcome.SKIPPED: logging.INFO,
    Outcome.FENCED: logging.WARNING,
    Outcome.RETRY: logging.WARNING,
    Outcome.MISSING: logging.WARNING,
    Outcome.FAILED: logging.ERROR,
}


def _pipeline() -> ImagePipeline:
    pipeline: ImagePipeline = current_app.extensions["image_pipeline"]
    return pipeline


@shared_task(bind=True, name=PROCESS_TASK, max_retries=None)  # type: ignore[untyped-decorator]
def process_image(self: Task, job_id: str) -> str:
    started = time.monotonic()
    result = _pipeline().processor.run(job_id)
    elapsed_ms = (time.monotonic() - started) * 1000
    log.log(
        _LEVELS[result.outcome],
        "process_image[%s] %s in %.0f ms (attempt %d)",
        job_id,
        result.outcome,
        elapsed_ms,
        result.attempts,
        extra={"job_id": job_id, "outcome": str(result.outcome)},
    )
    if result.outcome is Outcome.RETRY:
        raise self.retry(countdown=result.retry_in)
    if result.outcome is Outcome.MISSING and self.request.retries < MISSING_RETRIES:
        raise self.retry(countdown=0.5 * (self.request.retries + 1))
    return str(result.outcome)


@shared_task(name=REAP_TASK)  # type: ignore[untyped-decorator]
def reap() -> int:
    """Re-dispatch jobs whose worker died and jobs that were never taken."""
    pipeline = _pipeline()
    expired = pipeline.jobs.reap_expired()
    stale = pipeline.jobs.stale_pending(pipeline.settings.pending_grace)
    for job_id in [*expired, *stale]:
        pipeline.dispatch(job_id)
    if expired or stale:
        log.info(
            "reap: %d jobs back from expired leases, %d pending re-sent",
            len(expired),
            len(stale),
        )
    return len(expired) + len(stale)


@shared_task(name=COLLECT_TASK)  # type: ignore[untyped-decorator]
def collect_orphans() -> int:
    """Remove stored objects that no job needs (see ``app.orphans``)."""
    pipeline = _pipeline()
    settings = pipeline.settings
    collected = collect(
        pipeline.db,
        pipeline.storage,
        grace=settings.orphan_grace,
        retention=settings.original_retention,
    )
    if collected.orphans or collected.originals:
        log.info(
            "collect: %d orphaned objects and %d expired originals removed",
            collected.orphans,
            collected.originals,
        )
    return collected.orphans + collected.originals
