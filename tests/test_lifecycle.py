"""Media after COMPLETE: delete, keep-latest, reprocess; idempotent uploads."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import fields, replace
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.cli import main
from app.config import Settings
from app.extension import ImagePipeline
from app.models import Status
from app.reprocess import Reprocessed, outdated, reprocess
from tests.apps import MakeApp, pipeline_of
from tests.images import image_bytes


def complete(
    pipeline: ImagePipeline, source_type: str = "gallery", owner: str = "1"
) -> str:
    job_id = pipeline.submit(image_bytes((900, 600)), source_type, owner)
    assert pipeline.processor.run(job_id).outcome == "COMPLETE"
    return job_id


def media_id(pipeline: ImagePipeline, job_id: str) -> str:
    record = pipeline.get_status(job_id)
    assert record is not None and record.media is not None
    return record.media.id


def test_delete_removes_the_rows_and_every_stored_object(make_app: MakeApp) -> None:
    pipeline = pipeline_of(make_app())
    keep = complete(pipeline, owner="keep")
    gone = complete(pipeline, owner="gone")
    stored = set(pipeline.storage.keys())
    kept_keys = {k for k in stored if keep in k}
    assert pipeline.delete_media(media_id(pipeline, gone))
    assert pipeline.get_status(gone) is None
    assert set(pipeline.storage.keys()) == kept_keys
    assert len(kept_keys) == 5, "four variants and the original"


def test_delete_route_answers_204_then_404(make_app: MakeApp) -> None:
    app = make_app()
    pipeline = pipeline_of(app)
    target = media_id(pipeline, complete(pipeline))
    client = app.test_client()
    first = client.delete(f"/image-pipeline/media/{target}")
    assert (first.status_code, first.data) == (204, b"")
    again = client.delete(f"/image-pipeline/media/{target}")
    assert again.status_code == 404
    assert again.get_json()["error"] == "Media not found"
    assert client.delete("/image-pipeline/media/not-an-id").status_code == 404


def test_keep_latest_deletes_an_owners_older_media(make_app: MakeApp) -> None:
    pipeline = pipeline_of(make_app(keep_latest_json='{"avatar": 1}'))
    first = complete(pipeline, "avatar", "u1")
    other = complete(pipeline, "avatar", "u2")
    second = complete(pipeline, "avatar", "u1")
    pipeline.deliverer.run_once()
    assert [m.job_id for m in pipeline.list_media("avatar", "u1")] == [second]
    assert [m.job_id for m in pipeline.list_media("avatar", "u2")] == [other]
    stored = list(pipeline.storage.keys())
    assert stored and not [k for k in stored if first in k]


def test_reprocess_touches_only_media_of_a_changed_preset(make_app: MakeApp) -> None:
    before = pipeline_of(make_app())
    gallery = complete(before, "gallery")
    avatar = complete(before, "avatar")
    old_keys = set(before.storage.keys())

    changed = {"default": {"variants": {"sm": 300, "md": 700}, "quality": 70}}
    after = pipeline_of(make_app(presets_json=json.dumps(changed)))
    gallery_media = media_id(after, gallery)
    assert outdated(after) == [gallery_media]
    assert outdated(after, "avatar") == []

    assert reprocess(after, gallery_media) is Reprocessed.UPDATED
    assert reprocess(after, gallery_media) is Reprocessed.CURRENT
    assert outdated(after) == []

    record = after.get_status(gallery)
    assert record is not None and record.media is not None
    assert {v.name: v.width for v in record.media.variants} == {"sm": 300, "md": 700}
    base = after.settings.public_media_url + "/"
    new_keys = {v.url.removeprefix(base) for v in record.media.variants}
    for variant in record.media.variants:
        data = after.storage.get(variant.url.removeprefix(base))
        with Image.open(io.BytesIO(data)) as image:
            assert image.width == variant.width
    now = set(after.storage.keys())
    assert {k for k in now if gallery in k} == new_keys | {f"originals/{gallery}"}
    assert {k for k in now if avatar in k} == {k for k in old_keys if avatar in k}


def test_reprocess_command_runs_inline_and_resumes(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = pipeline_of(make_app())
    jobs = [complete(pipeline) for _ in range(3)]
    changed = {"default": {"variants": {"sm": 200}}}
    settings = replace(pipeline.settings, presets_json=json.dumps(changed))
    for f in fields(Settings):
        monkeypatch.setenv(f.metadata["env"], str(getattr(settings, f.name)))

    result = CliRunner().invoke(main, ["reprocess", "--outdated", "--inline"])
    assert result.exit_code == 0, result.output
    assert "3 media to re-render." in result.output
    assert "UPDATED: 3" in result.output
    again = CliRunner().invoke(main, ["reprocess", "--outdated", "--inline"])
    assert "0 media to re-render." in again.output
    after = pipeline_of(make_app(presets_json=json.dumps(changed)))
    for job_id in jobs:
        record = after.get_status(job_id)
        assert record is not None and record.media is not None
        assert list(record.media.urls) == ["sm"]


def test_the_same_idempotency_key_returns_the_same_job(make_app: MakeApp) -> None:
    app = make_app()
    pipeline = pipeline_of(app)
    client = app.test_client()

    def post(key: str, owner: str) -> dict[str, Any]:
        boundary, body = encode_multipart(
            {
                "file": FileStorage(io.BytesIO(image_bytes()), filename="a.jpg"),
                "sourceType": "gallery",
                "sourceId": owner,
            }
        )
        response = client.post(
            "/image-pipeline/upload",
            data=body,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={"Idempotency-Key": key},
        )
        assert response.status_code == 202
        result: dict[str, Any] = response.get_json()
        return result

    first = post("k-1", "1")
    assert post("k-1", "1") == first
    assert post("k-1", "2")["jobId"] != first["jobId"], "keys are per owner"
    assert post("k-2", "1")["jobId"] != first["jobId"]
    originals = list(pipeline.storage.keys("originals"))
    assert len(originals) == 3

    pipeline.processor.run(first["jobId"])
    assert post("k-1", "1") == {"jobId": first["jobId"], "status": "COMPLETE"}


def test_concurrent_uploads_with_one_key_make_one_job(make_app: MakeApp) -> None:
    pipeline = pipeline_of(make_app())
    results: list[str] = []
    barrier = threading.Barrier(4)

    def upload() -> None:
        barrier.wait()
        results.append(
            pipeline.submit(image_bytes(), "gallery", "1", idempotency_key="race")
        )

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert list(pipeline.storage.keys("originals")) == [f"originals/{results[0]}"]


def test_identical_bytes_return_the_existing_job_where_configured(
    make_app: MakeApp,
) -> None:
    pipeline = pipeline_of(make_app(dedupe_source_types="avatar"))
    photo = image_bytes((500, 500))
    first = pipeline.submit(photo, "avatar", "1")
    assert pipeline.submit(photo, "avatar", "1") == first
    assert pipeline.submit(photo, "avatar", "2") != first
    assert pipeline.submit(image_bytes((501, 500)), "avatar", "1") != first
    assert pipeline.submit(photo, "gallery", "1") != pipeline.submit(
        photo, "gallery", "1"
    )


def test_a_failed_jobs_bytes_can_be_uploaded_afresh(make_app: MakeApp) -> None:
    pipeline = pipeline_of(make_app(dedupe_source_types="avatar", max_attempts=1))
    photo = image_bytes((500, 500))
    failed = pipeline.submit(photo, "avatar", "1")
    pipeline.storage.delete(f"originals/{failed}")
    assert pipeline.processor.run(failed).outcome == "FAILED"
    again = pipeline.submit(photo, "avatar", "1")
    assert again != failed
    record = pipeline.get_status(again)
    assert record is not None and record.status is Status.PENDING


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_a_malformed_idempotency_key_is_a_400(make_app: MakeApp, key: str) -> None:
    from app.errors import BadRequest

    pipeline = pipeline_of(make_app())
    with pytest.raises(BadRequest, match="Idempotency-Key"):
        pipeline.submit(image_bytes(), "gallery", "1", idempotency_key=key)
