"""The ``image-pipeline`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import create_engine, inspect

from app.cli import main
from tests.images import image_bytes


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMAGE_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_process_writes_variants_and_prints_one_json_line_per_file(
    runner: CliRunner, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes((1000, 800)))
    result = runner.invoke(main, ["process", "--out", "out", str(photo)])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip())
    assert (line["status"], line["width"], line["height"]) == ("COMPLETE", 1000, 800)
    assert [v["name"] for v in line["variants"]] == ["sm", "md", "lg", "xl"]
    for variant in line["variants"]:
        with Image.open(variant["path"]) as image:
            assert image.size == (variant["width"], variant["height"])
    assert line["blurhash"]


def test_process_reports_a_rejection_and_exits_1(
    runner: CliRunner, tmp_path: Path
) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(image_bytes((800, 600), fmt="PNG"))
    bad = tmp_path / "notes.png"
    bad.write_text("just text")
    result = runner.invoke(main, ["process", "--preset", "avatar", str(good), str(bad)])
    assert result.exit_code == 1
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["status"] == "COMPLETE"
    assert {v["width"] for v in first["variants"]} == {64, 128, 256, 512}
    assert (second["status"], second["code"]) == ("REJECTED", "unsupported_format")


def test_process_names_the_presets_when_given_an_unknown_one(
    runner: CliRunner, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes())
    result = runner.invoke(main, ["process", "--preset", "poster", str(photo)])
    assert result.exit_code == 2
    assert "'poster' is not a preset" in result.output


def test_db_upgrade_creates_the_tables(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'pipeline.db'}")
    assert {"media_queue", "media", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_bad_configuration_is_reported_not_raised(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE_PIPELINE_MAX_PIXELS", "lots")
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "IMAGE_PIPELINE_MAX_PIXELS='lots'" in result.output


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["worker"], ["beat"], ["process"], ["db", "upgrade"]]
)
def test_every_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
