"""Collecting stored objects that no job needs any more.

Beat runs :func:`collect` every ``IMAGE_PIPELINE_COLLECT_INTERVAL``. It
removes, by the job id in their keys (``originals/<job>``,
``media/<job>/<version>/<name>.<ext>``):

- objects of jobs that do not exist (an upload whose row never committed, a
  deleted job whose objects outlived it);
- variants of an ended job that its ``Media`` does not name (a failed
  attempt's partial set, a fenced attempt's, an outdated preset version's);
- originals of ended jobs older than ``IMAGE_PIPELINE_ORIGINAL_RETENTION``,
  when it is set.

Objects of PENDING and PROCESSING jobs are always kept, and so is anything
younger than ``IMAGE_PIPELINE_ORPHAN_GRACE``: an upload stores its original
before it commits the row, and a task stores variants before it records them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.db import Database
from app.errors import StorageError
from app.models import TERMINAL, Media, MediaQueue
from app.storage import Storage

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class Collected:
    orphans: int = 0
    """Objects no job needs: missing job, or variants its media does not name."""
    originals: int = 0
    """Originals of ended jobs past their retention."""


@dataclass(frozen=True)
class _Job:
    ended: bool
    ended_at: datetime
    keys: frozenset[str]


def collect(
    db: Database,
    storage: Storage,
    *,
    grace: float,
    retention: float = 0.0,
    now: datetime | None = None,
) -> Collected:
    """Remove the objects no job needs; see the module docstring for which."""
    now = now or datetime.now(UTC)
    orphans = originals = 0
    for keys in _batches(_old_keys(storage, now - timedelta(seconds=grace))):
        jobs = _jobs(db, {_job_id(key) for key in keys})
        for key in keys:
            reason = _reason(key, jobs.get(_job_id(key)), now, retention)
            if reason and _delete(storage, key):
                orphans += reason == "orphan"
                originals += reason == "retention"
    return Collected(orphans, originals)


def _reason(key: str, job: _Job | None, now: datetime, retention: float) -> str | None:
    if job is None:
        return "orphan"
    if not job.ended:
        return None
    if key.startswith("media/"):
        return None if key in job.keys else "orphan"
    expired = now - job.ended_at > timedelta(seconds=retention)
    return "retention" if retention > 0 and expired else None


def _old_keys(storage: Storage, cutoff: datetime) -> Iterator[str]:
    for prefix in ("originals/", "media/"):
        for stored in storage.listing(prefix):
            if stored.modified < cutoff:
                yield stored.key


def _job_id(key: str) -> str:
    return key.split("/")[1]


def _jobs(db: Database, job_ids: set[str]) -> dict[str, _Job]:
    rows = select(MediaQueue.id, MediaQueue.status, MediaQueue.updated_at).where(
        MediaQueue.id.in_(job_ids)
    )
    media = select(Media.job_id, Media.variants).where(Media.job_id.in_(job_ids))
    with db.transaction() as session:
        named = {
            job_id: frozenset(info["key"] for info in variants.values())
            for job_id, variants in session.execute(media)
        }
        return {
            job_id: _Job(status in TERMINAL, updated_at, named.get(job_id, frozenset()))
            for job_id, status, updated_at in session.execute(rows)
        }


def _delete(storage: Storage, key: str) -> bool:
    try:
        storage.delete(key)
    except StorageError:
        log.warning("collect: could not remove %s", key)
        return False
    return True


def _batches(keys: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
