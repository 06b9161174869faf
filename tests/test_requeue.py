"""JobStore.requeue: an operator takes FAILED or stuck jobs back to PENDING."""

from __future__ import annotations

from app.jobs import JobStore
from app.models import Status
from tests.jobstore import LEASE, Clock, media_for, new_job, status


def failed_job(jobs: JobStore) -> str:
    job_id = new_job(jobs, max_attempts=1)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert jobs.release(claim, "storage_unavailable", "down") is Status.FAILED
    return job_id


def test_a_failed_job_goes_back_to_pending_with_attempts_reset(jobs: JobStore) -> None:
    job_id = failed_job(jobs)
    assert jobs.requeue(job_id, stuck_after=60)
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.attempts, row.error, row.error_code) == (
        Status.PENDING,
        0,
        None,
        None,
    )
    assert jobs.claim(job_id, LEASE) is not None


def test_a_requeue_happens_once(jobs: JobStore) -> None:
    job_id = failed_job(jobs)
    assert jobs.requeue(job_id, stuck_after=60)
    assert not jobs.requeue(job_id, stuck_after=60)


def test_complete_and_rejected_jobs_are_refused(jobs: JobStore) -> None:
    done, bad = new_job(jobs), new_job(jobs)
    claim = jobs.claim(done, LEASE)
    assert claim is not None and jobs.complete(claim, media_for(claim))
    claim = jobs.claim(bad, LEASE)
    assert claim is not None and jobs.reject(claim, "corrupt_image", "broken")
    assert not jobs.requeue(done, stuck_after=0)
    assert not jobs.requeue(bad, stuck_after=0)
    assert (status(jobs, done), status(jobs, bad)) == (Status.COMPLETE, Status.REJECTED)


def test_a_processing_job_is_requeued_only_once_its_lease_expired(
    jobs: JobStore, clock: Clock
) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert not jobs.requeue(job_id, stuck_after=0)
    clock.advance(LEASE + 1)
    assert jobs.requeue(job_id, stuck_after=0)
    assert status(jobs, job_id) is Status.PENDING
    assert not jobs.complete(claim, media_for(claim)), "the old claim is fenced off"


def test_a_pending_job_counts_as_stuck_only_after_the_grace(
    jobs: JobStore, clock: Clock
) -> None:
    job_id = new_job(jobs)
    assert not jobs.requeue(job_id, stuck_after=60)
    clock.advance(61)
    assert jobs.requeue(job_id, stuck_after=60)


def test_an_unknown_job_is_refused(jobs: JobStore) -> None:
    assert not jobs.requeue("7d7cf3a4-3b1f-4d39-9a0e-0d7d1e5b7e8c", stuck_after=0)
