"""The whole service as real processes: upload over HTTP, a worker, variants.

Deployments: the embedded one (``image-pipeline serve``: SQLite, local disk,
the embedded broker) always, and once more on S3 (moto's server on loopback);
and gunicorn + two Celery workers (one for the default queues, one for the
heavy queue) and beat on PostgreSQL with Redis as the broker when
``TEST_DATABASE_URL`` and ``TEST_REDIS_URL`` name servers, and with RabbitMQ
when ``TEST_AMQP_URL`` does too. With ``IMAGE_PIPELINE_CORPUS`` set, each
also takes the 12 MP phone photo of the shared corpus.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from tests.images import image_bytes
from tests.s3 import CREDENTIALS, make_bucket, moto_server
from tests.service import (
    Service,
    child_env,
    free_port,
    http,
    start,
    stop,
    upload,
    wait_terminal,
    wait_until_up,
)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
TEST_AMQP_URL = os.environ.get("TEST_AMQP_URL", "")
HEAVY_BYTES = 1024 * 1024
CORPUS = os.environ.get("IMAGE_PIPELINE_CORPUS", "")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    cwd = tmp_path_factory.mktemp("embedded")
    port = free_port()
    logs = cwd / "serve.log"
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    process = start(command, child_env({}), cwd, logs)
    service = Service(f"http://127.0.0.1:{port}", [process], logs)
    try:
        wait_until_up(service)
        yield service
    finally:
        stop([process])


@pytest.fixture(scope="module")
def embedded_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The embedded service storing originals and variants in an S3 bucket."""
    cwd = tmp_path_factory.mktemp("embedded-s3")
    with moto_server() as endpoint:
        make_bucket(endpoint, S3_BUCKET, public_prefix="site/media/")
        env = child_env(
            {
                **CREDENTIALS,
                "AWS_ENDPOINT_URL": endpoint,
                "STORAGE_URL": f"s3://{S3_BUCKET}/site",
                "PUBLIC_MEDIA_URL": f"{endpoint}/{S3_BUCKET}/site",
            }
        )
        port = free_port()
        logs = cwd / "serve.log"
        command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
        process = start(command, env, cwd, logs)
        service = Service(
            f"http://127.0.0.1:{port}", [process], logs, s3_endpoint=endpoint
        )
        try:
            wait_until_up(service)
            yield service
        finally:
            stop([process])


@pytest.fixture(scope="module")
def distributed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """gunicorn, two Celery workers and beat on PostgreSQL and Redis."""
    with distributed_service(tmp_path_factory, TEST_REDIS_URL) as service:
        yield service


@pytest.fixture(scope="module")
def distributed_amqp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The same on RabbitMQ; Redis is not named at all."""
    with distributed_service(tmp_path_factory, TEST_AMQP_URL) as service:
        yield service


@contextmanager
def distributed_service(
    tmp_path_factory: pytest.TempPathFactory, broker_url: str
) -> Iterator[Service]:
    cwd = tmp_path_factory.mktemp("distributed")
    server = make_url(Settings(database_url=TEST_DATABASE_URL).sqlalchemy_url)
    name = f"image_pipeline_e2e_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    env = child_env(
        {
            "DATABASE_URL": server.set(database=name).render_as_string(
                hide_password=False
            ),
            "BROKER_URL": broker_url,
            "STORAGE_URL": (cwd / "media").as_uri(),
            "IMAGE_PIPELINE_HEAVY_BYTES": str(HEAVY_BYTES),
            "IMAGE_PIPELINE_DATA_DIR": str(cwd / "data"),
        }
    )
    logs = cwd / "services.log"
    subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
    )
    port, metrics_port = free_port(), free_port()
    processes = [
        start(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "app:create_app()",
            ],
            env,
            cwd,
            logs,
        ),
        start(
            [
                *WORKER,
                "--queues",
                "image-pipeline,image-pipeline.control",
                "--hostname",
                "light@%h",
            ],
            env,
            cwd,
            logs,
        ),
        start(
            [
                *WORKER,
                "--queues",
                "image-pipeline-heavy",
                "--hostname",
                "heavy@%h",
                "--metrics-port",
                str(metrics_port),
            ],
            env,
            cwd,
            logs,
        ),
        start([sys.executable, "-m", "app", "beat"], env, cwd, logs),
    ]
    service = Service(f"http://127.0.0.1:{port}", processes, logs, metrics_port)
    try:
        wait_until_up(service)
        yield service
    finally:
        stop(processes)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


WORKER = [sys.executable, "-m", "app", "worker", "--concurrency", "1"]

DEPLOYMENTS = ["embedded", "embedded_s3"]
DISTRIBUTED = []
if TEST_DATABASE_URL and TEST_REDIS_URL:
    DISTRIBUTED.append("distributed")
if TEST_DATABASE_URL and TEST_AMQP_URL:
    DISTRIBUTED.append("distributed_amqp")
DEPLOYMENTS += DISTRIBUTED
S3_BUCKET = "e2e-media"

UPLOADS = ["generated"]
if CORPUS:
    UPLOADS.append("phone-12mp")


def upload_bytes(kind: str) -> bytes:
    if kind == "phone-12mp":
        path = Path(CORPUS) / "photos" / "phone-12mp-4032x3024.jpg"
        assert path.is_file(), f"IMAGE_PIPELINE_CORPUS is set but {path} is missing"
        return path.read_bytes()
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    return image_bytes((2000, 1500), exif=exif.tobytes())


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
@pytest.mark.parametrize("kind", UPLOADS)
def test_an_upload_completes_and_every_variant_is_served(
    request: pytest.FixtureRequest, deployment: str, kind: str
) -> None:
    service: Service = request.getfixturevalue(deployment)
    data = upload_bytes(kind)
    with Image.open(io.BytesIO(data)) as original:
        transposed = original.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        width, height = original.size[::-1] if transposed else original.size

    started = time.monotonic()
    status, body = upload(service, data)
    assert status == 202, body
    job = wait_terminal(service, body["jobId"], timeout=10)
    assert time.monotonic() - started < 10

    assert job["status"] == "COMPLETE", job
    assert job["attempts"] == 1
    media = job["media"]
    assert (media["width"], media["height"]) == (width, height)
    for variant in media["variants"]:
        code, content, headers = http("GET", service.url(variant["url"]))
        assert code == 200 and headers["Content-Type"] == "image/webp"
        with Image.open(io.BytesIO(content)) as image:
            assert image.size == (variant["width"], variant["height"])
            assert not image.getexif()
            assert "xmp" not in image.info
        assert variant["width"] == min(
            width, {"sm": 320, "md": 768, "lg": 1280, "xl": 1920}[variant["name"]]
        )


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_broken_image_is_rejected_once(
    request: pytest.FixtureRequest, deployment: str
) -> None:
    service: Service = request.getfixturevalue(deployment)
    status, body = upload(service, image_bytes((1200, 900))[:3000])
    assert status == 202
    job = wait_terminal(service, body["jobId"], timeout=10)
    assert (job["status"], job["attempts"], job["errorCode"]) == (
        "REJECTED",
        1,
        "corrupt_image",
    )


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_non_image_is_refused_at_upload(
    request: pytest.FixtureRequest, deployment: str
) -> None:
    service: Service = request.getfixturevalue(deployment)
    status, body = upload(service, b"<?php echo 'hi'; ?>")
    assert status == 415
    assert body["code"] == "unsupported_format"


def test_on_s3_every_object_is_stored_with_its_headers(embedded_s3: Service) -> None:
    status, body = upload(embedded_s3, image_bytes((1600, 1200)))
    assert status == 202, body
    job = wait_terminal(embedded_s3, body["jobId"], timeout=10)
    assert job["status"] == "COMPLETE", job

    client = boto3.client(
        "s3",
        endpoint_url=embedded_s3.s3_endpoint,
        region_name=CREDENTIALS["AWS_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    public_base = f"{embedded_s3.s3_endpoint}/{S3_BUCKET}/"
    for variant in job["media"]["variants"]:
        assert variant["url"].startswith(public_base)
        key = variant["url"][len(public_base) :]
        head = client.head_object(Bucket=S3_BUCKET, Key=key)
        assert head["ContentType"] == "image/webp"
        assert head["CacheControl"] == "public, max-age=31536000, immutable"
        assert head["ContentLength"] == variant["bytes"]
    original = f"site/originals/{job['id']}"
    head = client.head_object(Bucket=S3_BUCKET, Key=original)
    assert head["CacheControl"] == "private, no-store"
    assert http("GET", f"{embedded_s3.s3_endpoint}/{S3_BUCKET}/{original}")[0] == 403


def noise_png(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress: large in bytes, modest in pixels."""
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def rendered_by_heavy_worker(service: Service) -> float:
    """Jobs the heavy-queue worker rendered, from its Prometheus exporter."""
    url = f"http://127.0.0.1:{service.heavy_metrics_port}/metrics"
    _, body, _ = http("GET", url)
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if (
                sample.name == "image_pipeline_stage_seconds_count"
                and sample.labels.get("stage") == "render"
            ):
                return sample.value
    return 0.0


# Only where the run has the servers for the distributed deployments (CI does):
# an empty parameter list would otherwise show as a skipped test.
if DISTRIBUTED:

    @pytest.mark.parametrize("deployment", DISTRIBUTED)
    def test_large_originals_go_to_the_heavy_queue_and_its_worker(
        request: pytest.FixtureRequest, deployment: str
    ) -> None:
        service: Service = request.getfixturevalue(deployment)
        heavy = noise_png((800, 800))
        assert len(heavy) > HEAVY_BYTES
        before = rendered_by_heavy_worker(service)

        status, body = upload(service, heavy)
        assert status == 202, body
        job = wait_terminal(service, body["jobId"], timeout=20)
        assert job["status"] == "COMPLETE", job
        assert rendered_by_heavy_worker(service) == before + 1

        status, body = upload(service, image_bytes((600, 400)))
        assert status == 202, body
        assert wait_terminal(service, body["jobId"], timeout=10)["status"] == "COMPLETE"
        assert rendered_by_heavy_worker(service) == before + 1, "light job went heavy"
