"""Delivering completed jobs: the column sink, callables, concurrency, crashes."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text, update

from app.delivery import Deliverer
from app.extension import ImagePipeline
from app.models import Delivery, DeliveryStatus, MediaQueue, utcnow
from app.records import MediaQueueRecord
from app.sinks import create_example_users_table
from tests.apps import MakeApp, pipeline_of
from tests.images import image_bytes


@pytest.fixture
def make_pipeline(make_app: MakeApp) -> Callable[..., ImagePipeline]:
    return lambda **changes: pipeline_of(make_app(**changes))


@pytest.fixture
def avatars(make_pipeline: Callable[..., ImagePipeline]) -> ImagePipeline:
    """The default configuration: avatar URLs synced into users.avatar_url.

    The host's users exist already, as they would in production.
    """
    pipeline = make_pipeline()
    with pipeline.db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS users"))
    create_example_users_table(pipeline.db)
    with pipeline.db.engine.begin() as conn:
        for user_id in [*"0123456789", "42"]:
            conn.execute(text("INSERT INTO users (id) VALUES (:id)"), {"id": user_id})
    return pipeline


def complete(pipeline: ImagePipeline, source_type: str, source_id: str) -> str:
    job_id = pipeline.submit(image_bytes((300, 300)), source_type, source_id)
    assert pipeline.processor.run(job_id).outcome == "COMPLETE"
    return job_id


def avatar_url(pipeline: ImagePipeline, user_id: str) -> str | None:
    with pipeline.db.engine.connect() as conn:
        return conn.execute(
            text("SELECT avatar_url FROM users WHERE id = :id"), {"id": user_id}
        ).scalar()


def sm_url(pipeline: ImagePipeline, job_id: str) -> str:
    record = pipeline.get_status(job_id)
    assert record is not None and record.media is not None
    return record.media.urls["sm"]


def deliveries(pipeline: ImagePipeline, job_id: str) -> list[Delivery]:
    with pipeline.db.transaction() as session:
        return list(session.scalars(select(Delivery).where(Delivery.job_id == job_id)))


def test_a_completed_avatar_sets_the_users_avatar_url(avatars: ImagePipeline) -> None:
    job_id = complete(avatars, "avatar", "42")
    report = avatars.deliverer.run_once()
    assert (report.scheduled, report.delivered) == (1, 1)
    assert avatar_url(avatars, "42") == sm_url(avatars, job_id)
    [delivery] = deliveries(avatars, job_id)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)
    job = avatars.jobs.get(job_id)
    assert job is not None and job.delivered_at is not None


def test_a_delivered_job_is_not_delivered_again(avatars: ImagePipeline) -> None:
    complete(avatars, "avatar", "42")
    avatars.deliverer.run_once()
    report = avatars.deliverer.run_once()
    assert (report.scheduled, report.delivered) == (0, 0)


def test_an_older_avatar_completing_late_does_not_overwrite_a_newer_one(
    avatars: ImagePipeline,
) -> None:
    older = avatars.submit(image_bytes((300, 300)), "avatar", "7")
    newer = complete(avatars, "avatar", "7")
    avatars.deliverer.run_once()
    assert avatars.processor.run(older).outcome == "COMPLETE"
    report = avatars.deliverer.run_once()
    assert report.superseded == 1
    assert avatar_url(avatars, "7") == sm_url(avatars, newer)
    [late] = deliveries(avatars, older)
    assert late.status is DeliveryStatus.SUPERSEDED


def test_other_source_types_reach_no_avatar_sink(avatars: ImagePipeline) -> None:
    job_id = complete(avatars, "gallery", "42")
    assert avatars.deliverer.run_once().scheduled == 0
    assert avatar_url(avatars, "42") is None
    job = avatars.jobs.get(job_id)
    assert job is not None and job.delivered_at is not None


def test_without_upsert_a_missing_host_row_is_left_alone(
    make_pipeline: Callable[..., ImagePipeline], tmp_path: Path
) -> None:
    host = tmp_path / "host.db"
    engine = create_engine(f"sqlite:///{host}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, photo TEXT)"))
        conn.execute(text("INSERT INTO accounts (id) VALUES (5)"))
    sinks = {
        "avatar": [
            {
                "type": "column",
                "database_url": f"sqlite:///{host}",
                "table": "accounts",
                "column": "photo",
                "variant": "md",
            }
        ]
    }
    pipeline = make_pipeline(sinks_json=json.dumps(sinks))
    five = complete(pipeline, "avatar", "5")
    complete(pipeline, "avatar", "6")
    assert pipeline.deliverer.run_once().delivered == 2
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, photo FROM accounts")).all()
    record = pipeline.get_status(five)
    assert record is not None and record.media is not None
    assert rows == [(5, record.media.urls["md"])]
    engine.dispose()


def test_a_registered_callable_receives_each_job_once(
    make_pipeline: Callable[..., ImagePipeline],
) -> None:
    pipeline = make_pipeline(sinks_json="{}")
    received: list[MediaQueueRecord] = []
    pipeline.register_sink("*", "collector", received.append)
    first = complete(pipeline, "gallery", "1")
    second = complete(pipeline, "cover", "2")
    pipeline.deliverer.run_once()
    pipeline.deliverer.run_once()
    assert sorted(r.id for r in received) == sorted([first, second])
    assert all(r.media is not None for r in received)


def test_a_failing_callable_is_retried_then_delivered(
    make_pipeline: Callable[..., ImagePipeline],
) -> None:
    pipeline = make_pipeline(sinks_json="{}", delivery_backoff=0.001)
    calls: list[str] = []

    def flaky(job: MediaQueueRecord) -> None:
        calls.append(job.id)
        if len(calls) == 1:
            raise ConnectionError("host app restarting")

    pipeline.register_sink("gallery", "flaky", flaky)
    job_id = complete(pipeline, "gallery", "1")
    assert pipeline.deliverer.run_once().retried == 1
    [delivery] = deliveries(pipeline, job_id)
    assert delivery.last_error == "The sink 'flaky' raised ConnectionError."
    pipeline.deliverer.clock = lambda: utcnow() + timedelta(seconds=1)
    assert pipeline.deliverer.run_once().delivered == 1
    assert calls == [job_id, job_id]


def test_concurrent_deliverers_deliver_each_job_once_per_sink(
    avatars: ImagePipeline, make_pipeline: Callable[..., ImagePipeline]
) -> None:
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(job: MediaQueueRecord) -> None:
        with lock:
            counts[job.id] += 1

    other = make_pipeline()
    for pipeline in (avatars, other):
        pipeline.register_sink("avatar", "counter", count)
    jobs = [complete(avatars, "avatar", str(n % 4)) for n in range(12)]

    barrier = threading.Barrier(4)

    def run(pipeline: ImagePipeline) -> None:
        barrier.wait()
        for _ in range(3):
            pipeline.deliverer.run_once()

    threads = [
        threading.Thread(target=run, args=(p,))
        for p in (avatars, other, avatars, other)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counts == Counter({job_id: 1 for job_id in jobs})
    for owner in "0123":
        newest = [j for n, j in enumerate(jobs) if str(n % 4) == owner][-1]
        assert avatar_url(avatars, owner) == sm_url(avatars, newest)


def test_a_delivery_interrupted_mid_cycle_is_resumed_after_its_lease(
    avatars: ImagePipeline,
) -> None:
    job_id = complete(avatars, "avatar", "3")
    avatars.deliverer.schedule()
    [delivery] = deliveries(avatars, job_id)
    crashed = avatars.deliverer._claim(delivery.id)  # a deliverer that then died
    assert crashed is not None
    assert avatars.deliverer.run_once().delivered == 0, "its lease still holds"

    later = Deliverer(
        avatars,
        avatars.deliverer.sinks,
        avatars.deliverer.policy,
        clock=lambda: utcnow() + timedelta(seconds=61),
    )
    assert later.run_once().delivered == 1
    assert avatar_url(avatars, "3") == sm_url(avatars, job_id)
    [done] = deliveries(avatars, job_id)
    assert (done.status, done.attempts) == (DeliveryStatus.DELIVERED, 2)


def test_jobs_completed_before_delivery_existed_are_delivered(
    avatars: ImagePipeline,
) -> None:
    job_id = complete(avatars, "avatar", "9")
    with avatars.db.transaction() as session:
        session.execute(
            update(MediaQueue)
            .where(MediaQueue.id == job_id)
            .values(updated_at=datetime(2020, 1, 1, tzinfo=utcnow().tzinfo))
        )
    assert avatars.deliverer.run_once().delivered == 1
