"""Faults of the workers: killed, stopped, paused, duplicated, too slow."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import warnings
from pathlib import Path

from app.db import Database
from app.jobs import JobStore
from tests.faults.conftest import MakeStack
from tests.faults.harness import (
    LEASE,
    REAPER_INTERVAL,
    RECOVERY,
    TERMINAL,
    VISIBILITY,
    Stack,
    report,
    slow_image,
    small_image,
    wait_for,
)


def started(stack: Stack, *, workers: int = 1, concurrency: int = 1) -> Stack:
    """The stack with gunicorn, beat and ``workers`` workers, all ready."""
    processes = [stack.start_web(), stack.start_beat()]
    for n in range(workers):
        processes.append(stack.start_worker(f"worker-{n}", concurrency))
    stack.wait_ready(*processes)
    return stack


def worker(stack: Stack, n: int = 0) -> object:
    return next(p for p in stack.processes if p.name == f"worker-{n}")


def outcome_line(stack: Stack, job_id: str, outcome: str) -> re.Match[str] | None:
    pattern = rf"process_image\[{job_id}\] {outcome} in (\d+) ms"
    for process in stack.processes:
        match = re.search(pattern, process.text())
        if match:
            return match
    return None


def test_a_child_killed_mid_job_completes_on_the_second_attempt(
    make_stack: MakeStack,
) -> None:
    stack = started(make_stack())
    job = stack.submit(slow_image())
    stack.wait_status(job, ["PROCESSING"], 10)
    (child,) = stack.processes[2].children()
    os.kill(child, signal.SIGKILL)
    killed = time.monotonic()

    row = stack.wait_status(job, TERMINAL, RECOVERY + 5)
    recovery = time.monotonic() - killed
    assert (row["status"], row["attempts"]) == ("COMPLETE", 2)
    assert recovery < RECOVERY
    stack.assert_invariants([job])
    report("worker child SIGKILL mid-job", recovery_s=round(recovery, 2))


def test_a_killed_worker_is_replaced_by_the_reaper_before_redelivery(
    make_stack: MakeStack,
) -> None:
    stack = started(make_stack())
    job = stack.submit(slow_image())
    stack.wait_status(job, ["PROCESSING"], 10)
    received = time.monotonic()
    spare = stack.start_worker("worker-1")
    stack.processes[2].signal_group(signal.SIGKILL)
    killed = time.monotonic()

    row = stack.wait_status(job, TERMINAL, RECOVERY + 10)
    recovery = time.monotonic() - killed
    assert (row["status"], row["attempts"]) == ("COMPLETE", 2)
    assert time.monotonic() - received < VISIBILITY
    assert outcome_line(stack, job, "SKIPPED") is None

    # Once the visibility timeout has passed, a new worker restores the dead
    # worker's unacknowledged task: it must find the job done.
    stack.wait_ready(spare)
    time.sleep(max(0.0, received + VISIBILITY + 0.5 - time.monotonic()))
    later = stack.start_worker("worker-2")
    stack.wait_ready(later)
    wait_for(lambda: outcome_line(stack, job, "SKIPPED"), 15, "the redelivery")
    assert stack.row(job)["attempts"] == 2
    stack.assert_invariants([job])
    report(
        "whole worker SIGKILL, new worker later",
        recovery_s=round(recovery, 2),
        redelivery="SKIPPED",
    )


def test_a_warm_shutdown_finishes_the_running_job(make_stack: MakeStack) -> None:
    stack = started(make_stack())
    job = stack.submit(slow_image())
    stack.wait_status(job, ["PROCESSING"], 10)
    spare = stack.start_worker("worker-1")
    leaving = stack.processes[2]
    leaving.popen.send_signal(signal.SIGTERM)
    asked = time.monotonic()

    leaving.popen.wait(timeout=float(stack.env["IMAGE_PIPELINE_HARD_TIME_LIMIT"]) + 5)
    shutdown = time.monotonic() - asked
    row = stack.row(job)
    assert (row["status"], row["attempts"]) == ("COMPLETE", 1)
    stack.wait_ready(spare)
    stack.assert_invariants([job])
    report("SIGTERM warm shutdown mid-job", shutdown_s=round(shutdown, 2))


def test_a_task_delivered_twice_is_processed_once(make_stack: MakeStack) -> None:
    stack = started(make_stack(), workers=2)
    job = stack.submit(slow_image())
    stack.send_task(job)

    row = stack.wait_status(job, TERMINAL, 15)
    assert (row["status"], row["attempts"]) == ("COMPLETE", 1)
    skipped = wait_for(lambda: outcome_line(stack, job, "SKIPPED"), 5, "the loser")
    assert int(skipped.group(1)) < 1000

    # A crash after the finalising commit, before the ack, means one more
    # delivery: it must change nothing, not even the stored objects.
    files = stored_files(stack, job)
    stack.send_task(job)
    wait_for(
        lambda: len(re.findall(rf"process_image\[{job}\] SKIPPED", stack.logs())) > 1,
        10,
        "the redelivery after completion",
    )
    assert stored_files(stack, job) == files
    stack.assert_invariants([job])
    report("same task delivered twice", loser_ms=int(skipped.group(1)))


def stored_files(stack: Stack, job_id: str) -> dict[str, tuple[int, int]]:
    found = {}
    for variant in stack.media_variants(job_id).values():
        stat = (stack.storage / variant["key"]).stat()
        found[variant["key"]] = (stat.st_size, stat.st_mtime_ns)
    return found


def test_a_paused_worker_is_fenced_off_when_it_resumes(make_stack: MakeStack) -> None:
    stack = started(make_stack())
    job = stack.submit(slow_image())
    stack.wait_status(job, ["PROCESSING"], 10)
    first_token = stack.row(job)["lease_token"]
    spare = stack.start_worker("worker-1")
    paused = stack.processes[2]
    paused.signal_group(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        row = stack.wait_status(job, TERMINAL, RECOVERY + 10)
        recovery = time.monotonic() - stopped
        assert (row["status"], row["attempts"]) == ("COMPLETE", 2)
        files = stored_files(stack, job)
    finally:
        paused.signal_group(signal.SIGCONT)

    # Resumed, the paused child either finishes and is refused by the lease
    # token, or is stopped by its time limit; either way nothing changes.
    def resumed_outcome() -> str | None:
        text = paused.text()
        if re.search(rf"process_image\[{job}\] FENCED", text):
            return "fenced"
        if "Hard time limit" in text or "WorkerLostError" in text:
            return "killed by the hard time limit"
        if re.search(r"SoftTimeLimitExceeded|Soft time limit", text):
            return "stopped by the soft time limit"
        return None

    how = wait_for(resumed_outcome, 10, "the paused child to give up")
    assert first_token is not None
    assert stack.row(job)["status"] == "COMPLETE"
    assert stored_files(stack, job) == files
    stack.wait_ready(spare)
    stack.assert_invariants([job])
    report("paused worker past its lease", recovery_s=round(recovery, 2), late=how)


def test_a_soft_time_limit_hands_the_job_back(make_stack: MakeStack) -> None:
    soft = 1.5
    stack = started(make_stack(IMAGE_PIPELINE_SOFT_TIME_LIMIT=str(soft)))
    job = stack.submit(slow_image())
    stack.wait_status(job, ["PROCESSING"], 10)
    claimed = time.monotonic()
    (child,) = stack.processes[2].children()
    # Frozen past the soft limit (but not the hard one), the child meets the
    # limit as soon as it runs again.
    os.kill(child, signal.SIGSTOP)
    time.sleep(soft + 1.1)  # billiard checks its limits about once a second
    os.kill(child, signal.SIGCONT)

    row = stack.wait_status(job, ["PENDING", *TERMINAL], LEASE + REAPER_INTERVAL)
    held = time.monotonic() - claimed
    row = stack.wait_status(job, TERMINAL, 20)
    # On a loaded machine a later attempt may meet the short limit too.
    assert row["status"] == "COMPLETE" and row["attempts"] >= 2, row
    assert "Soft time limit" in stack.processes[2].text()
    stack.assert_invariants([job])
    report("soft time limit exceeded", processing_held_s=round(held, 2))


def test_a_hard_time_limit_kill_is_reaped(make_stack: MakeStack) -> None:
    stack = started(make_stack())
    job = stack.submit(slow_image())
    stack.wait_status(job, ["PROCESSING"], 10)
    claimed = time.monotonic()
    (child,) = stack.processes[2].children()
    os.kill(child, signal.SIGSTOP)  # unresponsive until the hard limit kills it

    stack.wait_status(job, ["PENDING", *TERMINAL], LEASE + REAPER_INTERVAL + 1.5)
    held = time.monotonic() - claimed
    row = stack.wait_status(job, TERMINAL, 15)
    assert (row["status"], row["attempts"]) == ("COMPLETE", 2)
    assert "Hard time limit" in stack.processes[2].text()
    stack.assert_invariants([job])
    report("hard time limit exceeded", processing_held_s=round(held, 2))


class ChildKiller:
    """Kills whichever worker child is processing ``job_id``, every attempt."""

    def __init__(self, stack: Stack, job_id: str) -> None:
        from celery import Celery

        self.stack = stack
        self.job_id = job_id
        self.kills = 0
        self.client = Celery("faults", broker=stack.redis.url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            row = self.stack.row(self.job_id)
            if row["status"] == "PROCESSING" and row["attempts"] > self.kills:
                pid = self._child_running_the_job()
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1

    def _child_running_the_job(self) -> int | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            active = self.client.control.inspect(timeout=1, limit=1).active() or {}
        for tasks in active.values():
            for task in tasks:
                if self.job_id in str(task.get("args")):
                    return int(task["worker_pid"])
        return None


def test_a_poison_job_fails_at_the_cap_while_valid_jobs_complete(
    make_stack: MakeStack,
) -> None:
    stack = started(make_stack(IMAGE_PIPELINE_MAX_ATTEMPTS="3"), concurrency=2)
    poison = stack.submit(slow_image())
    with ChildKiller(stack, poison) as killer:
        valid = [stack.submit(small_image(n)) for n in range(50)]
        row = stack.wait_status(poison, TERMINAL, 3 * (RECOVERY + 2))
        stack.wait_terminal(valid, 30)
    assert (row["status"], row["attempts"]) == ("FAILED", 3)
    assert row["error_code"] == "worker_lost"
    assert killer.kills == 3
    rows = stack.rows(valid)
    assert {r["status"] for r in rows.values()} == {"COMPLETE"}
    stack.assert_invariants([poison, *valid])
    report("poison job", poison="FAILED", attempts=3, valid_complete=len(valid))


def test_a_task_that_outruns_the_commit_waits_for_the_row(
    make_stack: MakeStack,
) -> None:
    stack = started(make_stack())
    job = "5b0c3f1e-7d64-4f0e-9a51-2f7c1d2b9e10"
    data = small_image(7)
    original = Path(stack.storage / "originals" / job)
    original.parent.mkdir(parents=True, exist_ok=True)
    original.write_bytes(data)
    stack.send_task(job)
    wait_for(lambda: outcome_line(stack, job, "MISSING"), 10, "the early task")

    db = Database(stack.database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        JobStore(db).create(
            job,
            source_type="gallery",
            source_id="faults",
            original_key=f"originals/{job}",
            original_bytes=len(data),
            max_attempts=5,
        )
    finally:
        db.dispose()
    stack.monitor.watch(job)
    row = stack.wait_status(job, TERMINAL, 10)
    assert (row["status"], row["attempts"], row["error_code"]) == ("COMPLETE", 1, None)
    stack.assert_invariants([job])
    report("task before the row's commit", outcome="COMPLETE after MISSING retry")
