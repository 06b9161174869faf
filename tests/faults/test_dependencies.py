"""Faults of what the service depends on: Redis, PostgreSQL, storage."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from tests.faults.conftest import MakeStack
from tests.faults.harness import (
    TERMINAL,
    PostgresCluster,
    Response,
    Stack,
    report,
    slow_image,
    small_image,
    wait_for,
)
from tests.faults.test_workers import started

UPLOAD_BOUND = 2.0


def upload_many(stack: Stack, count: int) -> list[Response]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda n: stack.upload(small_image(n)), range(count)))


def status_reads(stack: Stack, job_id: str, count: int = 40) -> list[Response]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: stack.status(job_id), range(count)))


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def check_outage_uploads(stack: Stack, answers: list[Response]) -> list[str]:
    slowest = max(a.seconds for a in answers)
    assert slowest < UPLOAD_BOUND, [a.seconds for a in answers]
    assert {a.status for a in answers} == {202}, answers
    jobs = [a.body["jobId"] for a in answers]
    for job in jobs:
        stack.monitor.watch(job)
    return jobs


def check_status_reads(stack: Stack, done: str) -> float:
    reads = status_reads(stack, done)
    assert {(r.status, r.body["status"]) for r in reads} == {(200, "COMPLETE")}
    latency = p95([r.seconds for r in reads])
    assert latency < 0.25
    return latency


def test_uploads_during_a_redis_outage_are_dispatched_when_it_returns(
    make_stack: MakeStack,
) -> None:
    stack = started(make_stack())
    done = stack.submit(small_image())
    stack.wait_status(done, ["COMPLETE"], 10)

    stack.redis.kill()
    answers = upload_many(stack, 8)
    jobs = check_outage_uploads(stack, answers)
    latency = check_status_reads(stack, done)
    assert stack.rows(jobs) and {r["status"] for r in stack.rows(jobs).values()} == {
        "PENDING"
    }

    stack.redis.start()
    back = time.monotonic()
    stack.wait_terminal(jobs, 30)
    recovery = time.monotonic() - back
    assert {r["status"] for r in stack.rows(jobs).values()} == {"COMPLETE"}
    stack.assert_invariants([done, *jobs])
    report(
        "Redis down at upload",
        upload_max_s=round(max(a.seconds for a in answers), 3),
        status_p95_ms=round(latency * 1000),
        recovery_after_redis_back_s=round(recovery, 2),
    )


def test_an_unresponsive_redis_does_not_hang_uploads(make_stack: MakeStack) -> None:
    stack = started(make_stack())
    done = stack.submit(small_image())
    stack.wait_status(done, ["COMPLETE"], 10)

    stack.redis.pause()
    try:
        answers = upload_many(stack, 8)
        latency = check_status_reads(stack, done)
        # No request thread is left waiting on the broker: the pool of
        # request threads still answers at once.
        reads = status_reads(stack, done, 32)
    finally:
        stack.redis.resume()
    jobs = check_outage_uploads(stack, answers)
    assert max(r.seconds for r in reads) < 0.5
    stack.wait_terminal(jobs, 30)
    stack.assert_invariants([done, *jobs])
    report(
        "Redis unresponsive at upload",
        upload_max_s=round(max(a.seconds for a in answers), 3),
        status_p95_ms=round(latency * 1000),
    )


def test_redis_restarted_empty_loses_no_queued_or_running_job(
    make_stack: MakeStack,
) -> None:
    stack = started(make_stack(), workers=2, concurrency=2)
    answers = upload_many(stack, 100)
    jobs = check_outage_uploads(stack, answers)

    def busy() -> bool:
        statuses = [r["status"] for r in stack.rows(jobs).values()]
        return statuses.count("PROCESSING") >= 2 and statuses.count("PENDING") >= 30

    wait_for(busy, 10, "jobs queued and running")
    stack.redis.kill()
    stack.redis.start()
    back = time.monotonic()
    stack.wait_terminal(jobs, 60)
    recovery = time.monotonic() - back
    assert {r["status"] for r in stack.rows(jobs).values()} == {"COMPLETE"}
    stack.assert_invariants(jobs)
    report(
        "Redis restarted empty", jobs=len(jobs), all_terminal_after_s=round(recovery, 2)
    )


@contextmanager
def database_down(stack: Stack, postgres: PostgresCluster) -> Iterator[None]:
    stack.monitor.db_down = True
    postgres.stop("fast")
    try:
        yield
    finally:
        postgres.start()
        stack.engine.dispose()
        stack.monitor.db_down = False


def test_uploads_while_postgresql_is_down_are_refused_and_leave_nothing(
    make_stack: MakeStack, postgres: PostgresCluster
) -> None:
    stack = make_stack()
    web = stack.start_web()
    stack.wait_ready(web)
    with database_down(stack, postgres):
        answers = [stack.upload(small_image(n)) for n in range(4)]
        queued = stack.queue_length()
        originals = list((stack.storage / "originals").glob("*"))
    assert {a.status for a in answers} == {503}, answers
    assert max(a.seconds for a in answers) < UPLOAD_BOUND
    assert queued == 0
    assert originals == []
    assert stack.rows() == {}

    worker = stack.start_worker("worker-0")
    stack.wait_ready(worker)
    stack.assert_invariants([])
    report(
        "PostgreSQL down at upload",
        status=503,
        upload_max_s=round(max(a.seconds for a in answers), 3),
    )


def test_jobs_survive_a_postgresql_restart(
    make_stack: MakeStack, postgres: PostgresCluster
) -> None:
    stack = started(make_stack(), workers=2)
    jobs = [stack.submit(slow_image()) for _ in range(4)]
    wait_for(
        lambda: any(r["status"] == "PROCESSING" for r in stack.rows(jobs).values()),
        10,
        "a running job",
    )
    with database_down(stack, postgres):
        time.sleep(2)  # the outage
    back = time.monotonic()
    stack.wait_terminal(jobs, 40)
    recovery = time.monotonic() - back
    rows = stack.rows(jobs)
    assert {r["status"] for r in rows.values()} == {"COMPLETE"}, rows
    stack.assert_invariants(jobs)
    report(
        "PostgreSQL restarted with jobs running",
        all_terminal_after_s=round(recovery, 2),
        attempts=sorted(r["attempts"] for r in rows.values()),
    )


def break_storage(stack: Stack) -> None:
    """Variants cannot be written: ``media`` is a file, not a directory."""
    shutil.rmtree(stack.storage / "media", ignore_errors=True)
    stack.storage.mkdir(parents=True, exist_ok=True)
    (stack.storage / "media").write_bytes(b"")


def test_storage_failing_for_a_while_ends_complete(make_stack: MakeStack) -> None:
    stack = started(make_stack(IMAGE_PIPELINE_MAX_ATTEMPTS="6"))
    break_storage(stack)
    jobs = [stack.submit(small_image(n)) for n in range(3)]
    wait_for(
        lambda: all(r["attempts"] >= 2 for r in stack.rows(jobs).values()),
        10,
        "failed attempts",
    )
    (stack.storage / "media").unlink()
    repaired = time.monotonic()
    stack.wait_terminal(jobs, 20)
    recovery = time.monotonic() - repaired
    rows = stack.rows(jobs)
    assert {r["status"] for r in rows.values()} == {"COMPLETE"}, rows
    stack.assert_invariants(jobs)
    report(
        "storage failing for a while",
        attempts=sorted(r["attempts"] for r in rows.values()),
        complete_after_repair_s=round(recovery, 2),
    )


def test_storage_refusing_for_good_fails_at_the_cap_without_media(
    make_stack: MakeStack,
) -> None:
    stack = started(
        make_stack(
            IMAGE_PIPELINE_MAX_ATTEMPTS="3",
            IMAGE_PIPELINE_COLLECT_INTERVAL="0.5",
            IMAGE_PIPELINE_ORPHAN_GRACE="4",
        )
    )
    job = stack.submit(slow_image())
    # Every attempt stores some variants, then fails on the last one.
    version = stack_preset_version()
    (stack.storage / "media" / job / version / "xl.webp").mkdir(parents=True)
    row = stack.wait_status(job, TERMINAL, 20)
    assert (row["status"], row["attempts"]) == ("FAILED", 3)
    assert row["error_code"] == "storage_unavailable"
    assert stack.media_counts().get(job) is None

    # The partial variants of the failed job are orphans: collected.
    shutil.rmtree(stack.storage / "media" / job / version / "xl.webp")
    wait_for(
        lambda: not any((stack.storage / "media" / job).rglob("*.webp")),
        10,
        "the partial variants to be collected",
    )
    stack.assert_invariants([job])
    report("storage refusing for good", status="FAILED", attempts=3)


def stack_preset_version() -> str:
    from app.config import Settings

    return Settings().presets()["default"].version
