"""The HTTP routes: status codes and JSON shapes of DESIGN.md."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import TestResponse, encode_multipart

from app.db import Database
from app.extension import ImagePipeline
from app.processing import Result
from app.storage import LocalStorage
from tests.images import image_bytes

JOB_FIELDS = {
    "id",
    "status",
    "sourceType",
    "sourceId",
    "attempts",
    "error",
    "media",
    "createdAt",
    "updatedAt",
}
MEDIA_FIELDS = {
    "id",
    "sourceType",
    "sourceId",
    "urls",
    "blurhash",
    "width",
    "height",
    "createdAt",
}


def upload(
    client: FlaskClient,
    data: bytes | None = None,
    filename: str = "photo.jpg",
    **fields: str,
) -> TestResponse:
    """POST a multipart body built in memory, as a browser sends one."""
    form: dict[str, Any] = {"sourceType": "gallery", "sourceId": "7", **fields}
    if data is not None:
        form["file"] = FileStorage(io.BytesIO(data), filename=filename)
    boundary, body = encode_multipart(form)
    return client.post(
        "/image-pipeline/upload",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def stored_originals(pipeline: ImagePipeline) -> list[str]:
    return list(pipeline.storage.keys("originals"))


def test_upload_accepts_an_image_and_answers_202_with_the_job(
    client: FlaskClient, pipeline: ImagePipeline, dispatched: list[str]
) -> None:
    response = upload(client, image_bytes())
    assert response.status_code == 202
    body = response.get_json()
    assert body == {"jobId": body["jobId"], "status": "PENDING"}
    assert dispatched == [body["jobId"]]
    assert stored_originals(pipeline) == [f"originals/{body['jobId']}"]


@pytest.mark.parametrize(
    ("fields", "send_file", "message"),
    [
        ({}, False, "file is required"),
        ({"sourceType": ""}, True, "sourceType is required"),
        ({"sourceId": ""}, True, "sourceId is required"),
        ({"sourceType": "../etc"}, True, "sourceType must be"),
        ({"sourceId": "x" * 300}, True, "sourceId must be"),
    ],
)
def test_upload_answers_400_for_a_missing_or_bad_field(
    client: FlaskClient,
    pipeline: ImagePipeline,
    fields: dict[str, str],
    send_file: bool,
    message: str,
) -> None:
    response = upload(client, image_bytes() if send_file else None, **fields)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert stored_originals(pipeline) == []


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"\x13\x37\x00\xff random", "unsupported_format"),
        (b"<html><script>alert(1)</script></html>", "unsupported_format"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
            "unsupported_format",
        ),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "unsupported_format"),
        (b"%PDF-1.7\n", "unsupported_format"),
    ],
)
def test_upload_answers_415_for_what_is_not_an_allowed_image(
    client: FlaskClient, pipeline: ImagePipeline, data: bytes, code: str
) -> None:
    response = upload(client, data, filename="innocent.png")
    assert response.status_code == 415
    assert response.get_json()["code"] == code
    assert stored_originals(pipeline) == []


def test_upload_judges_the_bytes_not_the_name_or_content_type(
    client: FlaskClient,
) -> None:
    response = client.post(
        "/image-pipeline/upload",
        data={
            "sourceType": "gallery",
            "sourceId": "7",
            "file": (io.BytesIO(image_bytes(fmt="PNG")), "x.txt", "text/plain"),
        },
    )
    assert response.status_code == 202


def test_upload_over_the_limit_answers_413_and_stores_nothing(
    client: FlaskClient, pipeline: ImagePipeline
) -> None:
    limit = pipeline.settings.max_upload_bytes
    response = upload(client, b"\xff\xd8\xff" + bytes(limit))
    assert response.status_code == 413
    assert response.get_json()["code"] == "file_too_large"
    assert stored_originals(pipeline) == []


def test_upload_answers_503_and_stores_nothing_when_the_database_is_down(
    client: FlaskClient, pipeline: ImagePipeline, dispatched: list[str]
) -> None:
    pipeline.jobs.db = Database("postgresql+psycopg://nobody@127.0.0.1:9/none")
    response = upload(client, image_bytes())
    assert response.status_code == 503
    assert response.get_json()["code"] == "database_unavailable"
    assert stored_originals(pipeline) == []
    assert dispatched == []


def test_upload_answers_503_when_storage_cannot_write(
    client: FlaskClient, pipeline: ImagePipeline, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    pipeline.storage = LocalStorage(blocker)
    response = upload(client, image_bytes())
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "The media store could not save a file.",
        "code": "storage_unavailable",
    }


def test_status_of_a_pending_job_has_every_field(client: FlaskClient) -> None:
    job_id = upload(client, image_bytes()).get_json()["jobId"]
    response = client.get(f"/image-pipeline/status/{job_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) >= JOB_FIELDS
    assert body["status"] == "PENDING"
    assert (body["sourceType"], body["sourceId"], body["attempts"]) == (
        "gallery",
        "7",
        0,
    )
    assert body["media"] is None
    assert body["createdAt"].endswith("Z")


def test_status_of_a_completed_job_carries_its_media(
    client: FlaskClient, run_jobs: Callable[[], list[Result]]
) -> None:
    job_id = upload(client, image_bytes((1000, 500))).get_json()["jobId"]
    run_jobs()
    body = client.get(f"/image-pipeline/status/{job_id}").get_json()
    assert body["status"] == "COMPLETE"
    assert body["attempts"] == 1
    media = body["media"]
    assert set(media) >= MEDIA_FIELDS
    assert (media["width"], media["height"]) == (1000, 500)
    assert list(media["urls"]) == ["sm", "md", "lg", "xl"]
    assert media["urls"]["sm"].startswith("/image-pipeline/files/media/")


@pytest.mark.parametrize(
    "job_id", [str(uuid.uuid4()), "not-a-uuid", "1' OR '1'='1", "%00", "A" * 500]
)
def test_status_of_an_unknown_or_malformed_id_is_404(
    client: FlaskClient, job_id: str
) -> None:
    response = client.get(f"/image-pipeline/status/{job_id}")
    assert response.status_code == 404
    assert response.get_json()["error"] == "Job not found"


@pytest.mark.parametrize(
    "query", ["", "?sourceType=avatar", "?sourceId=1", "?sourceType=&sourceId=1"]
)
def test_media_list_needs_both_parameters(client: FlaskClient, query: str) -> None:
    response = client.get(f"/image-pipeline/media{query}")
    assert response.status_code == 400
    assert "sourceType and sourceId" in response.get_json()["error"]


def test_media_list_returns_an_owners_media_newest_first(
    client: FlaskClient, run_jobs: Callable[[], list[Result]]
) -> None:
    first = upload(client, image_bytes(), sourceType="avatar", sourceId="1")
    run_jobs()
    second = upload(client, image_bytes(), sourceType="avatar", sourceId="1")
    upload(client, image_bytes(), sourceType="avatar", sourceId="2")
    run_jobs()
    response = client.get("/image-pipeline/media?sourceType=avatar&sourceId=1")
    assert response.status_code == 200
    jobs = [media["jobId"] for media in response.get_json()]
    assert jobs == [second.get_json()["jobId"], first.get_json()["jobId"]]


def test_files_serves_a_variant_as_an_image_with_safe_headers(
    client: FlaskClient, run_jobs: Callable[[], list[Result]]
) -> None:
    job_id = upload(client, image_bytes((800, 600))).get_json()["jobId"]
    run_jobs()
    url = client.get(f"/image-pipeline/status/{job_id}").get_json()["media"]["urls"][
        "md"
    ]
    response = client.get(url)
    content = response.get_data()
    response.close()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    with Image.open(io.BytesIO(content)) as image:
        assert image.size == (768, 576)


@pytest.mark.parametrize(
    "path",
    [
        "originals/{job}",
        "media/../originals/{job}",
        "..%2F..%2Fetc%2Fpasswd",
        "media/x",
    ],
)
def test_files_never_serves_originals_or_paths_outside_media(
    client: FlaskClient, path: str
) -> None:
    job_id = upload(client, image_bytes()).get_json()["jobId"]
    response = client.get(f"/image-pipeline/files/{path.format(job=job_id)}")
    assert response.status_code == 404
    assert response.is_json


def test_an_unexpected_error_is_a_json_500_without_a_traceback(
    client: FlaskClient, pipeline: ImagePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(job_id: str) -> None:
        raise RuntimeError("secret /srv/path detail")

    monkeypatch.setattr(pipeline, "get_status", explode)
    response = client.get(f"/image-pipeline/status/{uuid.uuid4()}")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal error", "code": "internal_error"}
    assert b"Traceback" not in response.data and b"/srv/path" not in response.data


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/image-pipeline/upload", 405),
        ("DELETE", "/image-pipeline/status/x", 405),
        ("GET", "/image-pipeline/nowhere", 404),
    ],
)
def test_routing_errors_are_json(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert "error" in response.get_json()


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"focusX": "0.2", "focusY": "0.8"}, 202),
        ({"focusX": "0.2"}, 400),
        ({"focusX": "left", "focusY": "top"}, 400),
        ({"focusX": "2", "focusY": "0"}, 400),
    ],
)
def test_upload_takes_an_optional_focal_point(
    client: FlaskClient, fields: dict[str, str], status: int
) -> None:
    response = upload(client, image_bytes(), sourceType="avatar", **fields)
    assert response.status_code == status


def test_upload_accepts_a_file_of_many_megabytes(
    client: FlaskClient, pipeline: ImagePipeline, dispatched: list[str]
) -> None:
    noisy = Image.effect_noise((1600, 1200), 90).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    data = buffer.getvalue()
    assert len(data) > 2 * 1024 * 1024
    response = upload(client, data, filename="big.png")
    assert response.status_code == 202, response.get_json()
    assert stored_originals(pipeline) == [f"originals/{dispatched[0]}"]
