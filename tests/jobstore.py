"""Helpers for tests of the job state machine (``JobStore``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from app.jobs import Claim, JobStore
from app.models import Media, Status, utcnow

LEASE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def new_job(jobs: JobStore, max_attempts: int = 3) -> str:
    job_id = str(uuid.uuid4())
    jobs.create(
        job_id,
        source_type="avatar",
        source_id="42",
        original_key=f"originals/{job_id}",
        original_bytes=10,
        max_attempts=max_attempts,
    )
    return job_id


def status(jobs: JobStore, job_id: str) -> Status:
    row = jobs.get(job_id)
    assert row is not None
    return row.status


def media_for(claim: Claim) -> Media:
    return Media(
        id=str(uuid.uuid4()),
        source_type=claim.source_type,
        source_id=claim.source_id,
        width=10,
        height=10,
        blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        dominant_color="#102030",
        original_format="jpeg",
        preset="default",
        preset_version="abc",
        variants={},
    )
