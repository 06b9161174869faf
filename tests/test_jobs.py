"""The job state machine: every transition, and every refused one."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.db import Database
from app.jobs import TRANSITIONS, WORKER_LOST, Claim, IllegalTransition, JobStore
from app.jobs import _transition as transition
from app.models import Media, MediaQueue, Status, utcnow
from tests.jobstore import LEASE, Clock, media_for, new_job, status


def media_count(db: Database, job_id: str) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(Media).where(Media.job_id == job_id)
        return session.scalar(query) or 0


def test_new_job_is_pending_with_no_attempts(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.attempts, row.error) == (Status.PENDING, 0, None)
    assert row.created_at.tzinfo is not None


def test_claim_moves_pending_to_processing_and_counts_the_attempt(
    jobs: JobStore, clock: Clock
) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert claim.attempts == 1
    row = jobs.get(job_id)
    assert row is not None
    assert row.status is Status.PROCESSING
    assert row.lease_token == claim.token
    assert row.lease_expires_at == clock.now + timedelta(seconds=LEASE)


def test_second_claim_of_the_same_job_is_refused(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    assert jobs.claim(job_id, LEASE) is not None
    assert jobs.claim(job_id, LEASE) is None
    row = jobs.get(job_id)
    assert row is not None and row.attempts == 1


def test_claim_of_a_missing_job_is_refused(jobs: JobStore) -> None:
    assert jobs.claim(str(uuid.uuid4()), LEASE) is None


def test_complete_records_one_media_and_clears_the_lease(
    jobs: JobStore, db: Database
) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert jobs.complete(claim, media_for(claim))
    row = jobs.get(job_id)
    assert row is not None
    assert row.status is Status.COMPLETE
    assert row.lease_token is None
    assert media_count(db, job_id) == 1


def test_complete_twice_makes_no_second_media(jobs: JobStore, db: Database) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert jobs.complete(claim, media_for(claim))
    assert not jobs.complete(claim, media_for(claim))
    assert media_count(db, job_id) == 1


def test_complete_with_a_stale_token_is_fenced(jobs: JobStore, db: Database) -> None:
    job_id = new_job(jobs)
    first = jobs.claim(job_id, LEASE)
    assert first is not None
    stale = Claim(**{**first.__dict__, "token": str(uuid.uuid4())})
    assert not jobs.complete(stale, media_for(stale))
    assert status(jobs, job_id) is Status.PROCESSING
    assert media_count(db, job_id) == 0


def test_reject_is_terminal_after_one_attempt(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert jobs.reject(claim, "corrupt_image", "The image data is corrupt.")
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.attempts, row.error_code) == (
        Status.REJECTED,
        1,
        "corrupt_image",
    )
    assert jobs.claim(job_id, LEASE) is None


def test_release_returns_the_job_to_pending_below_the_cap(jobs: JobStore) -> None:
    job_id = new_job(jobs, max_attempts=2)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert jobs.release(claim, "storage_unavailable", "down") is Status.PENDING
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.error_code, row.lease_token) == (
        Status.PENDING,
        "storage_unavailable",
        None,
    )


def test_release_at_the_cap_fails_the_job(jobs: JobStore) -> None:
    job_id = new_job(jobs, max_attempts=2)
    for expected in (Status.PENDING, Status.FAILED):
        claim = jobs.claim(job_id, LEASE)
        assert claim is not None
        assert jobs.release(claim, "storage_unavailable", "down") is expected
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.attempts) == (Status.FAILED, 2)
    assert jobs.claim(job_id, LEASE) is None


def test_completing_after_a_retry_clears_the_error(jobs: JobStore) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    jobs.release(claim, "storage_unavailable", "down")
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    assert jobs.complete(claim, media_for(claim))
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.attempts, row.error) == (Status.COMPLETE, 2, None)


@pytest.mark.parametrize("terminal", ["complete", "reject", "fail"])
def test_terminal_states_never_change(jobs: JobStore, terminal: str) -> None:
    job_id = new_job(jobs, max_attempts=1)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    if terminal == "complete":
        jobs.complete(claim, media_for(claim))
    elif terminal == "reject":
        jobs.reject(claim, "corrupt_image", "bad")
    else:
        jobs.release(claim, "storage_unavailable", "down")
    before = status(jobs, job_id)
    assert before.terminal
    assert jobs.claim(job_id, LEASE) is None
    assert not jobs.reject(claim, "corrupt_image", "again")
    assert jobs.release(claim, "storage_unavailable", "again") is None
    assert not jobs.complete(claim, media_for(claim))
    assert not jobs.renew(claim, LEASE)
    assert jobs.reap_expired() == []
    assert status(jobs, job_id) is before


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (source, target)
        for source in Status
        for target in Status
        if (source, target) not in TRANSITIONS
    ],
)
def test_transitions_outside_the_machine_are_refused(
    jobs: JobStore, db: Database, source: Status, target: Status
) -> None:
    job_id = new_job(jobs)
    with db.transaction() as session:
        session.execute(
            update(MediaQueue).where(MediaQueue.id == job_id).values(status=source)
        )
    with pytest.raises(IllegalTransition), db.transaction() as session:
        transition(session, job_id, source, target, utcnow())
    assert status(jobs, job_id) is source


def test_renew_extends_a_live_lease(jobs: JobStore, clock: Clock) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    clock.advance(40)
    assert jobs.renew(claim, LEASE)
    clock.advance(40)
    assert jobs.reap_expired() == []
    assert status(jobs, job_id) is Status.PROCESSING


def test_reaper_returns_an_expired_lease_to_pending(
    jobs: JobStore, clock: Clock
) -> None:
    job_id = new_job(jobs)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    clock.advance(LEASE - 1)
    assert jobs.reap_expired() == []
    clock.advance(2)
    assert jobs.reap_expired() == [job_id]
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.error_code) == (Status.PENDING, WORKER_LOST)
    assert not jobs.complete(claim, media_for(claim)), "the late finalise is fenced"
    second = jobs.claim(job_id, LEASE)
    assert second is not None and second.attempts == 2


def test_reaper_fails_a_job_whose_worker_died_at_every_attempt(
    jobs: JobStore, clock: Clock
) -> None:
    job_id = new_job(jobs, max_attempts=2)
    for _ in range(2):
        assert jobs.claim(job_id, LEASE) is not None
        clock.advance(LEASE + 1)
        jobs.reap_expired()
    row = jobs.get(job_id)
    assert row is not None
    assert (row.status, row.attempts, row.error_code) == (
        Status.FAILED,
        2,
        WORKER_LOST,
    )
    assert row.error is not None and "2 times" in row.error


def test_a_stale_pending_job_is_resent_at_doubling_intervals(
    jobs: JobStore, clock: Clock
) -> None:
    job_id = new_job(jobs)
    assert jobs.stale_pending(60) == []
    clock.advance(61)
    spacings = []
    for _ in range(8):
        assert jobs.stale_pending(60) == [job_id]
        assert jobs.stale_pending(60) == [], "a second reaper finds nothing to do"
        row = jobs.get(job_id)
        assert row is not None and row.next_redispatch_at is not None
        spacings.append((row.next_redispatch_at - clock.now).total_seconds())
        clock.now = row.next_redispatch_at + timedelta(seconds=1)
    assert spacings == [60, 120, 240, 480, 960, 1920, 1920, 1920]


def test_a_state_change_resets_the_resend_spacing(jobs: JobStore, clock: Clock) -> None:
    job_id = new_job(jobs)
    for _ in range(3):
        clock.advance(10_000)
        jobs.stale_pending(60)
    claim = jobs.claim(job_id, LEASE)
    assert claim is not None
    jobs.release(claim, "storage_unavailable", "down")
    row = jobs.get(job_id)
    assert row is not None
    assert (row.redispatches, row.next_redispatch_at) == (0, None)
    clock.advance(61)
    assert jobs.stale_pending(60) == [job_id]
