"""STORAGE_URL and the other settings this issue added: what is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings


@pytest.mark.parametrize(
    "url", ["file:///srv/media", "s3://media-bucket", "s3://media.example/site/a"]
)
def test_file_and_s3_storage_urls_are_accepted(tmp_path: Path, url: str) -> None:
    assert Settings(data_dir=str(tmp_path), storage_url=url).resolved().problems() == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "does not name a valid bucket"),
        ("s3://Bad_Bucket/x", "does not name a valid bucket"),
        ("gs://bucket/x", "use file:///absolute/path or s3://bucket/prefix"),
        ("file://relative", "use file:///absolute/path"),
    ],
)
def test_bad_storage_urls_are_explained(tmp_path: Path, url: str, message: str) -> None:
    problems = Settings(data_dir=str(tmp_path), storage_url=url).resolved().problems()
    assert len(problems) == 1 and message in problems[0], problems


def test_new_settings_are_validated_together(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=str(tmp_path),
        s3_addressing_style="dns",
        log_format="xml",
        storage_max_attempts=0,
    ).resolved()
    problems = "\n".join(settings.problems())
    for name in (
        "IMAGE_PIPELINE_S3_ADDRESSING_STYLE",
        "IMAGE_PIPELINE_LOG_FORMAT",
        "IMAGE_PIPELINE_STORAGE_MAX_ATTEMPTS",
    ):
        assert name in problems


def test_storage_options_come_from_the_settings(tmp_path: Path) -> None:
    options = Settings(
        data_dir=str(tmp_path), storage_read_timeout=7.5, storage_max_attempts=4
    ).storage_options()
    assert (options.read_timeout, options.max_attempts) == (7.5, 4)
