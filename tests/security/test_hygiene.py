"""What leaves the service: served media, error bodies and logs.

Media are served with their stored type and headers that stop a browser from
sniffing or running them. Nothing a client sent as a name, and nothing hidden
in an image (EXIF, comments, appended archives or scripts), comes back in a
response, a log line, a stored key or a variant; neither do stack traces or
server paths.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.extension import ImagePipeline
from app.processing import Result
from tests.images import image_bytes
from tests.security.conftest import Served
from tests.service import http, wait_terminal

MARKER = "zq7hostile"
HOSTILE_NAMES = [
    f"../../etc/passwd{MARKER}",
    f"{MARKER}\x00.png",
    MARKER + "A" * 10_240 + ".jpg",
    f"<script>alert('{MARKER}')</script>.png",
]
LEAKS = ("Traceback", 'File "', "/etc/passwd", "passwd", "image-pipeline-data")


def hidden_payload_jpeg() -> bytes:
    """A JPEG whose EXIF, comment and trailing bytes all carry the marker."""
    exif = Image.Exif()
    exif[0x010E] = f"exif-{MARKER}"  # ImageDescription
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    data = image_bytes(
        (400, 300), exif=exif.tobytes(), comment=f"<script>{MARKER}</script>"
    )
    archive = b"PK\x03\x04" + f"zip-{MARKER}".encode() + bytes(30) + b"PK\x05\x06"
    return data + archive + f"<script>alert('{MARKER}')</script>".encode()


BROKEN = [image_bytes((300, 200))[:700], b"\x89PNG\r\n\x1a\n" + b"\0" * 40]


def multipart(data: bytes, filename: str, source_type: str = "gallery") -> tuple:
    boundary, body = encode_multipart(
        {
            "file": FileStorage(
                io.BytesIO(data), filename=filename, content_type="text/html"
            ),
            "sourceType": source_type,
            "sourceId": "hygiene",
        }
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def assert_clean(text: str, *extra: str) -> None:
    for needle in (MARKER, *LEAKS, *extra):
        assert needle not in text, f"{needle!r} leaked"


def test_hostile_uploads_leak_nothing_over_http_in_logs_or_keys(
    waitress: Served,
) -> None:
    answers: list[str] = []
    jobs: list[str] = []
    inputs = [hidden_payload_jpeg(), *BROKEN, b"<svg onload=alert(1)>", b""]
    for index, data in enumerate(inputs):
        name = HOSTILE_NAMES[index % len(HOSTILE_NAMES)]
        body, headers = multipart(data, name)
        status, answer, _ = http(
            "POST", waitress.url("/image-pipeline/upload"), body, headers
        )
        answers.append(answer.decode())
        assert status in (202, 400, 415), answer
        if status == 202:
            jobs.append(json.loads(answer)["jobId"])

    variants: list[bytes] = []
    for job_id in jobs:
        job = wait_terminal(waitress, job_id, timeout=30)
        answers.append(json.dumps(job))
        for variant in (job.get("media") or {}).get("variants", []):
            status, content, headers = http("GET", waitress.url(variant["url"]))
            assert status == 200
            assert headers["Content-Type"] == "image/webp"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Content-Security-Policy"] == "default-src 'none'"
            variants.append(content)

    assert len(variants) == 4, "the JPEG with hidden payloads must complete"
    for content in variants:
        assert MARKER.encode() not in content
        assert b"PK\x03\x04" not in content and b"<script" not in content
        assert not Image.open(io.BytesIO(content)).getexif()
    data_dir = waitress.logs.parent / "data"
    for answer in answers:
        assert_clean(answer, str(data_dir))
    assert_clean(waitress.logs.read_text(errors="replace"))
    for path in data_dir.rglob("*"):
        assert_clean(str(path.relative_to(data_dir)))


def test_error_bodies_carry_no_internals(waitress: Served) -> None:
    probes = [
        ("GET", "/image-pipeline/status/../../etc/passwd", None, {}),
        ("GET", f"/image-pipeline/status/{MARKER}", None, {}),
        ("GET", f"/image-pipeline/files/media/{MARKER}.webp", None, {}),
        ("GET", "/image-pipeline/files/originals/x", None, {}),
        ("POST", "/image-pipeline/upload", b"--x\r\n", {"Content-Type": "text/plain"}),
        (
            "POST",
            "/image-pipeline/upload",
            b"garbage",
            {"Content-Type": "multipart/form-data; boundary=x"},
        ),
    ]
    for method, path, body, headers in probes:
        status, answer, response_headers = http(
            method, waitress.url(path), body, headers
        )
        assert 400 <= status < 500, (path, status)
        if status != 404 or path.startswith("/image-pipeline/"):
            assert_clean(answer.decode(errors="replace"))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_logs_of_a_hostile_upload_name_nothing_it_sent(
    client: FlaskClient,
    pipeline: ImagePipeline,
    run_jobs: Callable[[], list[Result]],
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    inputs = (hidden_payload_jpeg(), *BROKEN)
    caplog.set_level(logging.DEBUG)
    answers: list[Any] = []
    for data in inputs:
        body, headers = multipart(data, name)
        response = client.post("/image-pipeline/upload", data=body, headers=headers)
        answers.append(response.get_data(as_text=True))
    job_ids = [json.loads(answer)["jobId"] for answer in answers if "jobId" in answer]
    run_jobs()
    for job_id in job_ids:
        record = pipeline.get_status(job_id)
        assert record is not None
        answers.append(json.dumps(record.to_json()))

    for answer in answers:
        assert_clean(answer)
    assert_clean(caplog.text, str(Path(pipeline.settings.data_dir)))
