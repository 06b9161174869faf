"""Two reapers at once, two beats delivering avatars, and unsafe timings refused."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from tests.faults.conftest import MakeStack
from tests.faults.harness import (
    QUEUE,
    TIMINGS,
    Stack,
    report,
    tiny_photo,
    wait_for,
)
from workers import CONTROL_QUEUE, PROCESS_TASK

REAP_ONCE = """
import sys, time
from app import create_app
from workers.tasks import reap
app = create_app()
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
print(reap())
"""


def insert_stale_jobs(stack: Stack, pending: int, expired: int) -> list[str]:
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    ids = [str(uuid.uuid4()) for _ in range(pending + expired)]
    rows = [
        {
            "id": job_id,
            "status": "PENDING" if n < pending else "PROCESSING",
            "attempts": 0 if n < pending else 1,
            "token": None if n < pending else str(uuid.uuid4()),
            "key": f"originals/{job_id}",
            "past": past,
        }
        for n, job_id in enumerate(ids)
    ]
    insert = text(
        "INSERT INTO media_queue (id, status, source_type, source_id, attempts, "
        "max_attempts, original_key, original_bytes, lease_token, "
        "lease_expires_at, created_at, updated_at) VALUES (:id, :status, "
        "'gallery', 'faults', :attempts, 5, :key, 1, :token, "
        ":past, :past, :past)"
    )
    with stack.engine.begin() as conn:
        conn.execute(insert, rows)
    return ids


def dispatched_job_ids(stack: Stack) -> Counter[str]:
    client = stack.redis.client()
    counts: Counter[str] = Counter()
    for raw in client.lrange(QUEUE, 0, -1):
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        counts[args[0]] += 1
    return counts


def test_two_reapers_at_once_dispatch_each_stale_job_once(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    jobs = insert_stale_jobs(stack, pending=150, expired=150)
    start = time.time() + 4
    reapers = [
        subprocess.Popen(
            [sys.executable, "-c", REAP_ONCE, str(start)],
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [reaper.communicate(timeout=60) for reaper in reapers]
    assert [r.returncode for r in reapers] == [0, 0], outputs
    counts = [int(out.split()[-1]) for out, _ in outputs]

    dispatched = dispatched_job_ids(stack)
    assert set(dispatched) == set(jobs)
    assert set(dispatched.values()) == {1}
    assert sum(counts) == len(jobs)
    rows = stack.rows(jobs)
    assert {r["status"] for r in rows.values()} == {"PENDING"}
    report("two reapers at once", stale_jobs=len(jobs), per_reaper=counts)


def test_processes_refuse_to_start_with_unsafe_timings(make_stack: MakeStack) -> None:
    stack = make_stack()
    unsafe = {**stack.env, "IMAGE_PIPELINE_HARD_TIME_LIMIT": "5"}  # lease is 4
    commands = [
        [sys.executable, "-m", "app", "worker"],
        [sys.executable, "-m", "app", "beat"],
        [sys.executable, "-m", "celery", "-A", "workers.main", "worker"],
    ]
    for command in commands:
        result = subprocess.run(
            command, env=unsafe, capture_output=True, text=True, timeout=30
        )
        assert result.returncode != 0, command
        assert "hard time limit must be shorter than the lease" in (
            result.stdout + result.stderr
        ), command


OWNERS = ("ada", "grace", "linus")
JOBS_PER_OWNER = 4
AVATAR_SINK = "column:users.avatar_url"
PENDING_GRACE = float(TIMINGS["IMAGE_PIPELINE_PENDING_GRACE"])
ORDERED = "faults-ordered"
"""A queue that only the test fills, so the test decides the processing order."""


class DispatchLog:
    """Every ``process`` message sent to the queue, by job, as first seen.

    No worker consumes the queue while it is read, so each dispatch stays
    there to be counted.
    """

    def __init__(self, stack: Stack) -> None:
        self.client = stack.redis.client()
        self.seen: dict[str, tuple[str, float]] = {}
        self.raw: dict[str, bytes] = {}

    def watch(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(0.05)

    def poll(self) -> None:
        now = time.monotonic()
        for raw in self.client.lrange(QUEUE, 0, -1):
            message = json.loads(raw)
            if message["headers"]["task"] != PROCESS_TASK:
                continue
            args, _, _ = json.loads(base64.b64decode(message["body"]))
            self.seen.setdefault(message["headers"]["id"], (args[0], now))
            self.raw.setdefault(args[0], raw)

    def times(self) -> dict[str, list[float]]:
        by_job: dict[str, list[float]] = {}
        for job_id, seen_at in self.seen.values():
            by_job.setdefault(job_id, []).append(seen_at)
        return {job_id: sorted(times) for job_id, times in by_job.items()}


def create_users(stack: Stack, owners: Iterable[str]) -> None:
    """The host's table that the default avatar sink writes."""
    with stack.engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id text PRIMARY KEY, avatar_url text)"))
        conn.execute(
            text("INSERT INTO users (id) VALUES (:id)"), [{"id": o} for o in owners]
        )


def avatars(stack: Stack) -> dict[str, str | None]:
    with stack.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, avatar_url FROM users"))
        return {row.id: row.avatar_url for row in rows}


def deliveries(stack: Stack) -> list[dict[str, Any]]:
    query = text("SELECT job_id, sink, status, attempts FROM deliveries")
    with stack.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def upload_avatars(stack: Stack) -> dict[str, list[str]]:
    """``JOBS_PER_OWNER`` avatars per owner, oldest first, owners interleaved."""
    jobs: dict[str, list[str]] = {owner: [] for owner in OWNERS}
    for turn in range(JOBS_PER_OWNER):
        for n, owner in enumerate(OWNERS):
            answer = stack.upload(tiny_photo(turn * 10 + n), "avatar", owner)
            assert answer.status == 202, answer
            jobs[owner].append(answer.body["jobId"])
            stack.monitor.watch(answer.body["jobId"])
    return jobs


def process_in_order(stack: Stack, log: DispatchLog, job_ids: Iterable[str]) -> None:
    """Hand ``job_ids`` to the ordered worker, which takes them first to last."""
    client = stack.redis.client()
    for job_id in job_ids:
        client.lpush(ORDERED, log.raw[job_id])


def wait_delivered(stack: Stack, job_ids: Iterable[str], timeout: float) -> None:
    wanted = set(job_ids)

    def settled() -> bool:
        done = {d["job_id"] for d in deliveries(stack) if d["status"] != "PENDING"}
        return wanted <= done

    try:
        wait_for(settled, timeout, f"deliveries of {len(wanted)} jobs", every=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {deliveries(stack)}\n{stack.logs()}") from None


def test_two_beats_dispatch_stale_jobs_once_and_deliver_the_newest_avatar(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(IMAGE_PIPELINE_DELIVERY_INTERVAL="0.5")
    create_users(stack, OWNERS)
    beats = [
        stack.start_beat(name, IMAGE_PIPELINE_DATA_DIR=str(stack.home / name))
        for name in ("beat-a", "beat-b")
    ]
    control = stack.start_worker("control", 2, queues=CONTROL_QUEUE)
    ordered = stack.start_worker("ordered", 1, queues=ORDERED)
    stack.wait_ready(stack.start_web(), *beats, control, ordered)

    # No worker takes the avatar jobs: they go stale, and both beats' reapers
    # send them again; each send must be a pending grace after the last.
    jobs = upload_avatars(stack)
    log = DispatchLog(stack)
    log.watch(3 * PENDING_GRACE + 0.5)
    sent = log.times()
    every_job = [job for owner in OWNERS for job in jobs[owner]]
    assert set(sent) == set(every_job)
    assert min(len(times) for times in sent.values()) >= 2, sent
    gaps = [b - a for times in sent.values() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= PENDING_GRACE / 2, sorted(gaps)[:5]

    # The first two owners' newest avatars complete and are delivered before
    # their older ones, which complete afterwards, newest of those first.
    first, second, third = OWNERS
    newest = {owner: jobs[owner][-1] for owner in OWNERS}
    process_in_order(stack, log, [newest[first], newest[second]])
    wait_delivered(stack, [newest[first], newest[second]], 15)
    late = [*reversed(jobs[first][:-1]), *jobs[second][1::-1], jobs[second][2]]
    process_in_order(stack, log, [*late, *jobs[third]])
    stack.wait_terminal(every_job, 30)
    wait_delivered(stack, every_job, 15)

    # One delivery per job, applied or superseded once; the newest avatar wins.
    rows = deliveries(stack)
    assert Counter((d["job_id"], d["sink"]) for d in rows) == {
        (job, AVATAR_SINK): 1 for job in every_job
    }
    status = {d["job_id"]: d["status"] for d in rows}
    assert {d["attempts"] for d in rows} == {1}, rows
    assert set(status.values()) <= {"DELIVERED", "SUPERSEDED"}
    assert all(status[newest[owner]] == "DELIVERED" for owner in OWNERS)
    assert {status[job] for job in late} == {"SUPERSEDED"}
    expected = {
        owner: stack.status(newest[owner]).body["media"]["urls"]["sm"]
        for owner in OWNERS
    }
    assert avatars(stack) == expected

    # The reapers' extra sends are still queued: a worker that takes them
    # must find every job done and change nothing.
    drainer = stack.start_worker("drainer")
    stack.wait_ready(drainer)
    wait_for(lambda: stack.queue_length() == 0, 20, "the extra sends to drain")
    assert {row["attempts"] for row in stack.rows(every_job).values()} == {1}
    stack.assert_invariants(every_job)
    assert avatars(stack) == expected
    report(
        "two beats at once, avatar delivery",
        jobs=len(every_job),
        sends_per_job=sorted({len(times) for times in sent.values()}),
        shortest_gap_s=round(min(gaps), 2),
        deliveries=dict(Counter(status.values())),
    )
