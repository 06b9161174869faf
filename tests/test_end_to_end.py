"""The whole service as real processes: upload over HTTP, a worker, variants.

Two deployments: the embedded one (``image-pipeline serve``: SQLite, local
disk, the embedded broker) always; and gunicorn + a separate Celery worker
and beat on PostgreSQL + Redis when ``TEST_DATABASE_URL`` and
``TEST_REDIS_URL`` name servers. With ``IMAGE_PIPELINE_CORPUS`` set, each also
takes the 12 MP phone photo of the shared corpus.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.config import Settings
from tests.images import image_bytes

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
CORPUS = os.environ.get("IMAGE_PIPELINE_CORPUS", "")
CONFIG_VARIABLES = ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "STORAGE_URL")
TERMINAL = {"COMPLETE", "REJECTED", "FAILED"}
FAST = {
    "IMAGE_PIPELINE_REAPER_INTERVAL": "2",
    "IMAGE_PIPELINE_PENDING_GRACE": "5",
}


@dataclass
class Service:
    base: str
    processes: list[subprocess.Popen[bytes]]
    logs: Path

    def url(self, path: str) -> str:
        return self.base + path if path.startswith("/") else path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    command: list[str], env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def wait_until_up(service: Service, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = http(
                "GET", service.url(f"/image-pipeline/status/{uuid.uuid4()}")
            )
            if status == 404:
                return
        except OSError:
            pass
        for process in service.processes:
            assert process.poll() is None, service.logs.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError("service did not start:\n" + service.logs.read_text()[-3000:])


def upload(
    service: Service, data: bytes, source_type: str = "gallery"
) -> tuple[int, dict[str, Any]]:
    boundary, payload = encode_multipart(
        {
            "file": FileStorage(io.BytesIO(data), filename="upload.jpg"),
            "sourceType": source_type,
            "sourceId": "e2e",
        }
    )
    status, body, _ = http(
        "POST",
        service.url("/image-pipeline/upload"),
        payload,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    return status, json.loads(body)


def wait_terminal(service: Service, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = http("GET", service.url(f"/image-pipeline/status/{job_id}"))
        assert status == 200
        job: dict[str, Any] = json.loads(body)
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.1)
    raise AssertionError(
        f"job {job_id} not terminal in {timeout} s:\n"
        + service.logs.read_text()[-4000:]
    )


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(FAST)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


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
def distributed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """gunicorn, a Celery worker and beat on PostgreSQL and Redis."""
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
            "REDIS_URL": TEST_REDIS_URL,
            "STORAGE_URL": (cwd / "media").as_uri(),
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
    port = free_port()
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
            [sys.executable, "-m", "app", "worker", "--concurrency", "2"],
            env,
            cwd,
            logs,
        ),
        start([sys.executable, "-m", "app", "beat"], env, cwd, logs),
    ]
    service = Service(f"http://127.0.0.1:{port}", processes, logs)
    try:
        wait_until_up(service)
        yield service
    finally:
        stop(processes)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


DEPLOYMENTS = ["embedded"]
if TEST_DATABASE_URL and TEST_REDIS_URL:
    DEPLOYMENTS.append("distributed")

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
