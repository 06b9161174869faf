"""A rolling restart of the workers while a thousand uploads arrive.

RELIABILITY.md's scenario restarts workers every 20 s under production load;
here the images are small and the restarts come every few seconds, so the
same number of uploads meets the same kind of fault within CI's time.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.faults.conftest import MakeStack
from tests.faults.harness import (
    TIMINGS,
    Process,
    Response,
    Stack,
    report,
    tiny_photo,
)

UPLOADS = 1000
CLIENTS = 16
DISTINCT = 24
"""Different photos; the uploads cycle through them."""
RESTART_EVERY = 5.0
MIN_RESTARTS = 4
PENDING_GRACE = "15"
"""Production re-sends a PENDING job after 60 s, longer than its backlogs last.
At the suite's 1.5 s the reaper would re-send most of this thousand-job
backlog every cycle (3,357 redundant sends in one measured run, enough to
hold the canary up past its bound); this scenario is about restarts, so the
grace keeps production's proportion to the backlog instead."""
DEADLINE = 120.0
"""Longest the uploaded jobs may take to end, seconds."""
SHUTDOWN_BOUND = float(TIMINGS["IMAGE_PIPELINE_HARD_TIME_LIMIT"]) + 30 + 10
"""Longest a warm shutdown may take: the running task up to its hard limit,
then up to 30 s in which billiard's pool child waits for the parent, already
joining it, to read the last result (``_ensure_messages_consumed``)."""


class RollingRestarter:
    """Restarts the workers in turn, as a rolling deploy does.

    Every ``every`` seconds the next worker is asked to stop (SIGTERM: a warm
    shutdown that finishes its running task) and a new one is started in its
    place at once; the restarter waits for the new one to be ready. Each
    leaving worker is watched until it exits.
    """

    def __init__(self, stack: Stack, workers: list[Process], every: float) -> None:
        self.stack = stack
        self.workers = workers
        self.every = every
        self.shutdowns: list[tuple[int | None, float]] = []
        self.errors: list[str] = []
        self._waiters: list[threading.Thread] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def restarts(self) -> int:
        return len(self._waiters)

    def __enter__(self) -> RollingRestarter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def drained(self) -> list[tuple[int | None, float]]:
        """Exit codes and shutdown seconds, once every leaving worker is gone."""
        for waiter in self._waiters:
            waiter.join(timeout=SHUTDOWN_BOUND + 5)
        return self.shutdowns

    def _run(self) -> None:
        turn = 0
        next_at = time.monotonic() + self.every
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self._restart(turn % len(self.workers), turn)
            except Exception as exc:  # reported by the test, not lost here
                self.errors.append(f"restart {turn}: {exc!r}")
                return
            turn += 1
            next_at += self.every

    def _restart(self, slot: int, turn: int) -> None:
        leaving = self.workers[slot]
        leaving.popen.send_signal(signal.SIGTERM)
        waiter = threading.Thread(target=self._await_exit, args=(leaving,))
        waiter.start()
        self._waiters.append(waiter)
        fresh = self.stack.start_worker(f"worker-{slot}-{turn + 1}")
        self.workers[slot] = fresh
        self.stack.wait_ready(fresh)

    def _await_exit(self, leaving: Process) -> None:
        asked = time.monotonic()
        try:
            code: int | None = leaving.popen.wait(timeout=SHUTDOWN_BOUND)
        except subprocess.TimeoutExpired:
            code = None
        self.shutdowns.append((code, time.monotonic() - asked))


def upload_all(stack: Stack) -> list[Response]:
    """``UPLOADS`` uploads from ``CLIENTS`` concurrent clients."""
    photos = [tiny_photo(seed) for seed in range(DISTINCT)]

    def upload(n: int) -> Response:
        answer = stack.upload(photos[n % DISTINCT], "gallery", f"owner-{n % 50}")
        if answer.status == 202:
            stack.monitor.watch(answer.body["jobId"])
        return answer

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(upload, range(UPLOADS)))


def test_a_rolling_restart_under_load_completes_every_upload_once(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(IMAGE_PIPELINE_PENDING_GRACE=PENDING_GRACE)
    workers = [stack.start_worker(f"worker-{n}") for n in range(2)]
    stack.wait_ready(stack.start_web(), stack.start_beat(), *workers)

    started = time.monotonic()
    with RollingRestarter(stack, workers, RESTART_EVERY) as restarter:
        answers = upload_all(stack)
        uploaded = time.monotonic() - started
        assert {a.status for a in answers} == {202}, [
            (a.status, a.body) for a in answers if a.status != 202
        ][:5]
        jobs = [a.body["jobId"] for a in answers]
        stack.wait_terminal(jobs, DEADLINE)
        finished = time.monotonic() - started
        restarts_under_load = restarter.restarts

    assert not restarter.errors, restarter.errors
    assert restarts_under_load >= MIN_RESTARTS, restarts_under_load
    shutdowns = restarter.drained()
    assert len(shutdowns) == restarter.restarts
    assert {code for code, _ in shutdowns} == {0}, shutdowns

    # Every upload ended COMPLETE, once, within the attempt cap.
    rows = stack.rows(jobs)
    assert len(rows) == UPLOADS
    assert {row["status"] for row in rows.values()} == {"COMPLETE"}
    assert "job_id" in stack.unique_columns("media")
    media = stack.media_counts()
    assert {media.get(job, 0) for job in jobs} == {1}
    attempts = [row["attempts"] for row in rows.values()]
    assert max(attempts) <= stack.max_attempts
    stack.assert_invariants(jobs)

    report(
        "rolling restart under load",
        uploads=UPLOADS,
        complete=UPLOADS,
        restarts=restarts_under_load,
        warm_shutdown_s=sorted(round(seconds, 1) for _, seconds in shutdowns),
        upload_phase_s=round(uploaded, 1),
        all_terminal_s=round(finished, 1),
        retried_jobs=sum(n > 1 for n in attempts),
        status_reads=len(stack.monitor.status_codes),
    )
