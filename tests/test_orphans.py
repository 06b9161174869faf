"""Collecting stored objects that no job needs."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from app.extension import ImagePipeline
from app.orphans import collect
from app.storage import LocalStorage, original_key, variant_key
from tests.images import image_bytes


def age(storage: LocalStorage, key: str, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(storage.path(key), (past, past))


def put_old(storage: LocalStorage, key: str, seconds: float = 7200) -> None:
    storage.put(key, b"x", "application/octet-stream")
    age(storage, key, seconds)


def test_objects_of_missing_jobs_are_collected_once_past_the_grace(
    pipeline: ImagePipeline,
) -> None:
    storage = pipeline.storage
    assert isinstance(storage, LocalStorage)
    ghost = str(uuid.uuid4())
    put_old(storage, original_key(ghost))
    put_old(storage, variant_key(ghost, "v1", "sm", "webp"))
    young = str(uuid.uuid4())
    storage.put(original_key(young), b"x", "application/octet-stream")

    collected = collect(pipeline.db, storage, grace=3600)

    assert collected.orphans == 2
    assert not storage.exists(original_key(ghost))
    assert not storage.exists(variant_key(ghost, "v1", "sm", "webp"))
    assert storage.exists(original_key(young))


def test_unreferenced_variants_of_an_ended_job_go_and_its_media_stays(
    pipeline: ImagePipeline, run_jobs: object
) -> None:
    storage = pipeline.storage
    assert isinstance(storage, LocalStorage)
    job_id = pipeline.submit(image_bytes((800, 600)), "gallery", "1")
    run_jobs()  # type: ignore[operator]
    job = pipeline.get_status(job_id)
    assert job is not None and job.status == "COMPLETE" and job.media is not None
    kept = [key for key in storage.keys("media/")]
    for key in kept:
        age(storage, key, 7200)
    stray = variant_key(job_id, "outdated", "sm", "webp")
    put_old(storage, stray)

    collected = collect(pipeline.db, storage, grace=3600)

    assert collected.orphans == 1
    assert not storage.exists(stray)
    assert all(storage.exists(key) for key in kept)


def test_objects_of_running_jobs_are_kept(pipeline: ImagePipeline) -> None:
    storage = pipeline.storage
    assert isinstance(storage, LocalStorage)
    job_id = pipeline.submit(image_bytes((800, 600)), "gallery", "1")
    age(storage, original_key(job_id), 7200)
    partial = variant_key(job_id, "v1", "sm", "webp")
    put_old(storage, partial)

    assert collect(pipeline.db, storage, grace=3600, retention=1).orphans == 0
    assert storage.exists(partial) and storage.exists(original_key(job_id))


def test_originals_of_ended_jobs_go_after_the_retention(
    pipeline: ImagePipeline, run_jobs: object
) -> None:
    storage = pipeline.storage
    assert isinstance(storage, LocalStorage)
    job_id = pipeline.submit(image_bytes((800, 600)), "gallery", "1")
    run_jobs()  # type: ignore[operator]
    age(storage, original_key(job_id), 7200)
    later = datetime.now(UTC) + timedelta(days=2)

    kept = collect(pipeline.db, storage, grace=3600, retention=0, now=later)
    assert kept.originals == 0 and storage.exists(original_key(job_id))

    gone = collect(pipeline.db, storage, grace=3600, retention=86400, now=later)
    assert gone.originals == 1 and not storage.exists(original_key(job_id))
