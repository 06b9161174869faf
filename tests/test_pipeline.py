"""The Python API (submit, get_status, list_media) and a job's processing."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.errors import BadRequest, ImageRejected, PayloadTooLarge, StorageError
from app.extension import ImagePipeline
from app.models import Media, Status
from app.processing import Outcome, Result
from app.records import MediaQueueRecord
from app.storage import LocalStorage
from tests.images import image_bytes

RunJobs = Callable[[], list[Result]]


def variant_image(
    pipeline: ImagePipeline, record: MediaQueueRecord, name: str
) -> Image.Image:
    assert record.media is not None
    key = next(v for v in record.media.variants if v.name == name).url
    key = key.removeprefix(pipeline.settings.public_media_url + "/")
    return Image.open(io.BytesIO(pipeline.storage.get(key)))


def completed(pipeline: ImagePipeline, job_id: str) -> MediaQueueRecord:
    record = pipeline.get_status(job_id)
    assert record is not None
    assert record.status is Status.COMPLETE, record.error
    return record


def media_rows(pipeline: ImagePipeline) -> int:
    with pipeline.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Media)) or 0


def test_submit_returns_a_pending_job(
    pipeline: ImagePipeline, dispatched: list[str]
) -> None:
    job_id = pipeline.submit(image_bytes(), "gallery", "7")
    record = pipeline.get_status(job_id)
    assert record is not None
    assert (record.status, record.source_type, record.source_id) == (
        Status.PENDING,
        "gallery",
        "7",
    )
    assert dispatched == [job_id]


def test_submit_accepts_a_path_and_a_file_object(
    pipeline: ImagePipeline, dispatched: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes(fmt="PNG"))
    from_path = pipeline.submit(path, "gallery", "1")
    with path.open("rb") as handle:
        from_file = pipeline.submit(handle, "gallery", "1")
    assert dispatched == [from_path, from_file]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", ImageRejected),
        (b"hello, world", ImageRejected),
        (b"\x89PNG\r\n\x1a\n" + bytes(30 * 1024 * 1024), PayloadTooLarge),
    ],
)
def test_submit_refuses_bad_input_and_stores_nothing(
    pipeline: ImagePipeline, data: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        pipeline.submit(data, "gallery", "1")
    assert list(pipeline.storage.keys()) == []


def test_submit_needs_an_owner(pipeline: ImagePipeline) -> None:
    with pytest.raises(BadRequest, match="sourceId is required"):
        pipeline.submit(image_bytes(), "gallery", "")


def test_default_preset_renders_four_widths_keeping_the_aspect_ratio(
    pipeline: ImagePipeline, run_jobs: RunJobs
) -> None:
    job_id = pipeline.submit(image_bytes((2400, 1600)), "gallery", "7")
    assert [r.outcome for r in run_jobs()] == [Outcome.COMPLETE]
    record = completed(pipeline, job_id)
    assert record.media is not None
    sizes = {v.name: (v.width, v.height) for v in record.media.variants}
    assert sizes == {
        "sm": (320, 213),
        "md": (768, 512),
        "lg": (1280, 853),
        "xl": (1920, 1280),
    }
    for name, size in sizes.items():
        with variant_image(pipeline, record, name) as image:
            assert (image.format, image.size) == ("WEBP", size)


def test_small_images_are_never_upscaled(
    pipeline: ImagePipeline, run_jobs: RunJobs
) -> None:
    job_id = pipeline.submit(image_bytes((500, 250)), "gallery", "7")
    run_jobs()
    record = completed(pipeline, job_id)
    assert record.media is not None
    assert max(v.width for v in record.media.variants) == 500


def test_avatar_preset_renders_squares(
    pipeline: ImagePipeline, run_jobs: RunJobs
) -> None:
    job_id = pipeline.submit(image_bytes((900, 600)), "avatar", "42")
    run_jobs()
    record = completed(pipeline, job_id)
    assert record.media is not None
    assert {v.name: (v.width, v.height) for v in record.media.variants} == {
        "xs": (64, 64),
        "sm": (128, 128),
        "md": (256, 256),
        "lg": (512, 512),
    }


def test_outputs_are_upright_and_carry_no_metadata(
    pipeline: ImagePipeline, run_jobs: RunJobs
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    exif[0x010F] = "CameraMaker"
    data = image_bytes((600, 400), exif=exif.tobytes())
    job_id = pipeline.submit(data, "gallery", "7")
    run_jobs()
    record = completed(pipeline, job_id)
    assert record.media is not None
    assert (record.media.width, record.media.height) == (400, 600)
    with variant_image(pipeline, record, "sm") as image:
        assert image.size == (320, 480)
        assert not image.getexif()
        assert "xmp" not in image.info and "icc_profile" not in image.info
        # The dark bar on the left edge is now along the top.
        assert image.convert("RGB").getpixel((160, 5))[2] > 90


def test_undecodable_image_is_rejected_after_one_attempt(
    pipeline: ImagePipeline, run_jobs: RunJobs
) -> None:
    truncated = image_bytes((800, 600))[:2000]
    job_id = pipeline.submit(truncated, "gallery", "7")
    assert [r.outcome for r in run_jobs()] == [Outcome.REJECTED]
    record = pipeline.get_status(job_id)
    assert record is not None
    assert (record.status, record.attempts) == (Status.REJECTED, 1)
    assert record.error_code == "corrupt_image"
    assert record.error and record.error.endswith(".")
    assert media_rows(pipeline) == 0


def test_storage_failure_retries_then_fails_at_the_cap_with_no_media(
    pipeline: ImagePipeline, dispatched: list[str], tmp_path: Path
) -> None:
    job_id = pipeline.submit(image_bytes(), "gallery", "7")
    pipeline.processor.storage = LocalStorage(tmp_path / "empty-store")
    outcomes = [pipeline.processor.run(job_id).outcome for _ in range(5)]
    assert outcomes == [Outcome.RETRY] * 4 + [Outcome.FAILED]
    record = pipeline.get_status(job_id)
    assert record is not None
    assert (record.status, record.attempts) == (Status.FAILED, 5)
    assert record.error_code == StorageError.code
    assert media_rows(pipeline) == 0


def test_transient_error_then_success_completes_once(
    pipeline: ImagePipeline, dispatched: list[str], tmp_path: Path
) -> None:
    job_id = pipeline.submit(image_bytes(), "gallery", "7")
    working = pipeline.processor.storage
    pipeline.processor.storage = LocalStorage(tmp_path / "empty-store")
    retry = pipeline.processor.run(job_id)
    assert retry.outcome is Outcome.RETRY and retry.retry_in > 0
    pipeline.processor.storage = working
    assert pipeline.processor.run(job_id).outcome is Outcome.COMPLETE
    assert completed(pipeline, job_id).attempts == 2


def test_a_redelivered_task_is_a_no_op(
    pipeline: ImagePipeline, dispatched: list[str]
) -> None:
    job_id = pipeline.submit(image_bytes(), "gallery", "7")
    assert pipeline.processor.run(job_id).outcome is Outcome.COMPLETE
    stored = sorted(pipeline.storage.keys())
    assert pipeline.processor.run(job_id).outcome is Outcome.SKIPPED
    assert media_rows(pipeline) == 1
    assert sorted(pipeline.storage.keys()) == stored
    assert completed(pipeline, job_id).attempts == 1


def test_a_task_for_an_unknown_job_reports_it_missing(pipeline: ImagePipeline) -> None:
    assert pipeline.processor.run(str(uuid.uuid4())).outcome is Outcome.MISSING


@pytest.mark.parametrize("job_id", ["", "nope", "../../etc/passwd", str(uuid.uuid4())])
def test_get_status_is_none_for_unknown_or_malformed_ids(
    pipeline: ImagePipeline, job_id: str
) -> None:
    assert pipeline.get_status(job_id) is None


def test_records_are_typed_with_snake_case_attributes(
    pipeline: ImagePipeline, run_jobs: RunJobs
) -> None:
    job_id = pipeline.submit(image_bytes((700, 700)), "avatar", "9")
    run_jobs()
    record = completed(pipeline, job_id)
    assert record.media is not None
    assert record.media.urls["sm"].endswith("/sm.webp")
    assert record.media.source_type == "avatar"
    assert record.media.dominant_color.startswith("#")
    assert record.created_at.tzinfo is not None
    assert len(record.media.blurhash) >= 6


def test_list_media_returns_only_completed_media_of_the_owner(
    pipeline: ImagePipeline, run_jobs: RunJobs
) -> None:
    done = pipeline.submit(image_bytes(), "cover", "5")
    run_jobs()
    pipeline.submit(image_bytes(), "cover", "5")  # still pending
    media = pipeline.list_media("cover", "5")
    assert [m.job_id for m in media] == [done]
    assert pipeline.list_media("cover", "6") == []


@pytest.mark.parametrize(("focus_x", "bar_visible"), [(0.0, True), (1.0, False)])
def test_a_focal_point_places_the_avatar_crop(
    pipeline: ImagePipeline, run_jobs: RunJobs, focus_x: float, bar_visible: bool
) -> None:
    # A 1200x400 field whose left quarter is a dark blue bar.
    data = image_bytes((1200, 400))
    job_id = pipeline.submit(data, "avatar", "1", focus=(focus_x, 0.5))
    run_jobs()
    record = completed(pipeline, job_id)
    with variant_image(pipeline, record, "xs") as image:
        left_edge_blue = image.convert("RGB").getpixel((2, 32))[2] > 90
    assert left_edge_blue is bar_visible


@pytest.mark.parametrize("focus", [(1.5, 0.5), (-0.1, 0.0)])
def test_a_focal_point_outside_the_image_is_refused(
    pipeline: ImagePipeline, focus: tuple[float, float]
) -> None:
    with pytest.raises(BadRequest, match="focal point"):
        pipeline.submit(image_bytes(), "avatar", "1", focus=focus)
