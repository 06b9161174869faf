"""Broker settings for Redis and RabbitMQ, the bounded publish, and routing."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image

from app import create_app
from app.config import Settings
from app.extension import ImagePipeline
from app.migrate import upgrade
from app.routing import is_heavy, looks_animated
from tests.images import image_bytes
from tests.service import free_port
from workers import HEAVY_QUEUE, QUEUE, Dispatcher, celery_config


def settings_for(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=str(tmp_path), **values).resolved()  # type: ignore[arg-type]


def test_redis_gets_a_visibility_timeout(tmp_path: Path) -> None:
    config = celery_config(settings_for(tmp_path, broker_url="redis://r:6379/0"))
    assert config["broker_transport_options"]["visibility_timeout"] == 900.0


def test_rabbitmq_gets_publisher_confirms_and_no_visibility_timeout(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, broker_url="amqp://guest:guest@rabbit:5672//")
    options = celery_config(settings)["broker_transport_options"]
    assert options == {"confirm_publish": True}
    assert settings.broker_kind == "amqp"


def test_task_events_are_on_for_flower(tmp_path: Path) -> None:
    config = celery_config(settings_for(tmp_path))
    assert config["worker_send_task_events"] and config["task_send_sent_event"]


def test_each_queue_has_a_routing_key_of_its_own(tmp_path: Path) -> None:
    # A key shared by several queues makes AMQP copy a task into each of them.
    queues = celery_config(settings_for(tmp_path))["task_queues"]
    assert {q.name: (q.exchange.name, q.routing_key) for q in queues} == {
        name: (name, name) for name in (QUEUE, HEAVY_QUEUE, "image-pipeline.control")
    }


@pytest.fixture(params=["redis", "amqp"])
def unreachable_broker_app(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Flask]:
    scheme = "redis" if request.param == "redis" else "amqp"
    url = f"{scheme}://guest:guest@127.0.0.1:{free_port()}/"
    app = create_app(settings_for(tmp_path, broker_url=url))
    pipeline: ImagePipeline = app.extensions["image_pipeline"]
    upgrade(pipeline.db)
    yield app
    pipeline.db.dispose()


def test_an_upload_does_not_wait_on_a_broker_that_is_down(
    unreachable_broker_app: Flask,
) -> None:
    pipeline: ImagePipeline = unreachable_broker_app.extensions["image_pipeline"]
    started = time.monotonic()
    job_id = pipeline.submit(image_bytes(), "avatar", "1")
    assert time.monotonic() - started < 3
    record = pipeline.get_status(job_id)
    assert record is not None and record.status == "PENDING"


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], loop=0)
    return buffer.getvalue()


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (animated_gif(), True),
        (animated("PNG"), True),
        (animated("WEBP"), True),
        (image_bytes(fmt="GIF"), False),
        (image_bytes(fmt="PNG"), False),
        (image_bytes(fmt="WEBP"), False),
        (image_bytes(), False),
    ],
)
def test_animation_is_read_from_the_header(data: bytes, expected: bool) -> None:
    assert looks_animated(data) is expected


@pytest.mark.parametrize(
    ("size", "animated_", "threshold", "expected"),
    [
        (10, False, 100, False),
        (101, False, 100, True),
        (10, True, 100, True),
        (10**9, True, 0, False),
    ],
)
def test_heavy_jobs_are_large_or_animated(
    size: int, animated_: bool, threshold: int, expected: bool
) -> None:
    assert is_heavy(size, animated_, threshold) is expected


def test_the_dispatcher_routes_large_and_animated_jobs_to_the_heavy_queue(
    app: Flask, pipeline: ImagePipeline, dispatched: list[str]
) -> None:
    settings = replace(pipeline.settings, heavy_bytes=50_000)
    small = pipeline.submit(image_bytes((100, 100)), "gallery", "1")
    large = pipeline.submit(image_bytes((2000, 2000), quality=100), "gallery", "1")
    moving = pipeline.submit(animated_gif(), "gallery", "1")
    dispatcher = Dispatcher(app.extensions["celery"], settings, pipeline.jobs)
    assert [dispatcher.queue_for(job) for job in (small, large, moving)] == [
        QUEUE,
        HEAVY_QUEUE,
        HEAVY_QUEUE,
    ]
    assert dispatcher.queue_for("no-such-job") == QUEUE


def test_the_embedded_broker_polls_five_times_a_second(tmp_path: Path) -> None:
    from app import create_app
    from app.config import Settings

    app = create_app(Settings(data_dir=str(tmp_path)).resolved())
    with app.extensions["celery"].connection_for_write() as connection:
        assert connection.transport.polling_interval == 0.2
        assert connection.transport.driver_name == "sqlalchemy"
    app.extensions["image_pipeline"].db.dispose()
