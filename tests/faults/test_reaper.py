"""The reaper run twice at once, and start-up refusing unsafe timings."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.faults.conftest import MakeStack
from tests.faults.harness import QUEUE, Stack, report

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
