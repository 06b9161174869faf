"""A rolling restart of the workers while a thousand uploads arrive.

RELIABILITY.md's scenario restarts workers every 20 s under production load;
here the images are small and the restarts come every few seconds, so the
same number of uploads meets the same kind of fault within CI's time.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.faults.conftest import MakeStack
from tests.faults.harness import Process, Response, Stack, report, tiny_photo

UPLOADS = 1000
CLIENTS = 16
DISTINCT = 24
"""Different photos; the uploads cycle through them."""
RESTART_EVERY = 5.0
MIN_RESTARTS = 4
DEADLINE = 120.0
"""Longest the uploaded jobs may take to end, seconds."""


class RollingRestarter:
    """Restarts the workers in turn, as a deploy does.

    Every ``every`` seconds the next worker is asked to stop (SIGTERM, a warm
    shutdown that finishes its running task); once it has exited a new one
    takes its place, and the restarter waits for it to be ready.
    """

    def __init__(self, stack: Stack, workers: list[Process], every: float) -> None:
        self.stack = stack
        self.workers = workers
        self.every = every
        self.shutdowns: list[float] = []
        self.exit_codes: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def restarts(self) -> int:
        return len(self.exit_codes)

    def __enter__(self) -> RollingRestarter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        turn = 0
        while not self._stop.wait(self.every):
            try:
                self._restart(turn % len(self.workers), turn)
            except Exception as exc:  # reported by the test, not lost here
                self.errors.append(f"restart {turn}: {exc!r}")
                return
            turn += 1

    def _restart(self, slot: int, turn: int) -> None:
        leaving = self.workers[slot]
        asked = time.monotonic()
        leaving.popen.send_signal(signal.SIGTERM)
        hard_limit = float(self.stack.env["IMAGE_PIPELINE_HARD_TIME_LIMIT"])
        self.exit_codes.append(leaving.popen.wait(timeout=hard_limit + 10))
        self.shutdowns.append(time.monotonic() - asked)
        fresh = self.stack.start_worker(f"worker-{slot}-{turn + 1}")
        self.workers[slot] = fresh
        self.stack.wait_ready(fresh)


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
    stack = make_stack()
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
    assert set(restarter.exit_codes) == {0}, restarter.exit_codes

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
        warm_shutdown_max_s=round(max(restarter.shutdowns), 2),
        upload_phase_s=round(uploaded, 1),
        all_terminal_s=round(finished, 1),
        retried_jobs=sum(n > 1 for n in attempts),
        status_reads=len(stack.monitor.status_codes),
    )
