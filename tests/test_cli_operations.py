"""The operator's commands: import, status, requeue, stats, config, worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import create_app
from app.cli import main
from app.config import Settings, describe
from app.extension import ImagePipeline
from app.migrate import upgrade
from app.models import Status
from tests.images import image_bytes

VARIABLES = ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "STORAGE_URL")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMAGE_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


@pytest.fixture
def pipeline(runner: CliRunner, tmp_path: Path) -> Iterator[ImagePipeline]:
    """The same data directory the commands use, migrated."""
    app = create_app(Settings.from_env())
    extension: ImagePipeline = app.extensions["image_pipeline"]
    extension.dispatch = lambda job_id: None
    upgrade(extension.db)
    yield extension
    extension.db.dispose()


def test_import_enqueues_a_folder_and_summarises_refusals(
    runner: CliRunner, pipeline: ImagePipeline, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "alice.jpg").write_bytes(image_bytes())
    (folder / "bob.png").write_bytes(image_bytes(fmt="PNG"))
    (folder / "notes.txt").write_text("not an image")
    result = runner.invoke(main, ["import", str(folder), "--source-type", "avatar"])
    assert result.exit_code == 1, result.output
    assert "2 accepted, 1 refused." in result.output
    assert "notes.txt: The file is not an image" in result.output
    assert [m for m in ("alice", "bob") if _jobs_of(pipeline, m)] == ["alice", "bob"]


def test_import_can_give_every_file_one_source_id(
    runner: CliRunner, pipeline: ImagePipeline, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(image_bytes())
    result = runner.invoke(
        main,
        ["import", str(folder), "--source-type", "gallery", "--source-id-from", "p9"],
    )
    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 refused." in result.output
    assert len(_jobs_of(pipeline, "p9", "gallery")) == 2


def test_status_prints_the_job_as_the_api_does(
    runner: CliRunner, pipeline: ImagePipeline
) -> None:
    job_id = pipeline.submit(image_bytes(), "avatar", "42")
    result = runner.invoke(main, ["status", job_id])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["jobId"], body["status"], body["sourceId"]) == (
        job_id,
        "PENDING",
        "42",
    )
    missing = runner.invoke(main, ["status", "not-a-job"])
    assert missing.exit_code == 1
    assert "No job 'not-a-job'" in missing.output


def test_requeue_puts_failed_jobs_back_and_refuses_final_ones(
    runner: CliRunner, pipeline: ImagePipeline
) -> None:
    failed = pipeline.submit(image_bytes(), "avatar", "1")
    _fail(pipeline, failed)
    rejected = pipeline.submit(image_bytes()[:500], "avatar", "2")
    assert str(pipeline.processor.run(rejected).outcome) == "REJECTED"

    result = runner.invoke(main, ["requeue", "--failed"])
    assert result.exit_code == 0, result.output
    assert f"{failed} requeued" in result.output
    job = pipeline.jobs.get(failed)
    assert job is not None and (job.status, job.attempts) == (Status.PENDING, 0)

    refused = runner.invoke(main, ["requeue", rejected])
    assert refused.exit_code == 1
    assert "only FAILED or stuck jobs can be requeued" in refused.output


def test_requeue_needs_a_job_or_a_flag(runner: CliRunner) -> None:
    result = runner.invoke(main, ["requeue"])
    assert result.exit_code == 2
    assert "--failed" in result.output


def test_stats_counts_jobs_by_status(
    runner: CliRunner, pipeline: ImagePipeline
) -> None:
    pipeline.submit(image_bytes(), "avatar", "1")
    pipeline.submit(image_bytes(), "gallery", "1")
    result = runner.invoke(main, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["jobs"]["PENDING"] == 2 and body["jobs"]["COMPLETE"] == 0
    assert body["queueDepth"] == 2
    assert body["oldestPendingAgeSeconds"] >= 0
    text = runner.invoke(main, ["stats"])
    assert "queue depth" in text.output and "oldest pending:" in text.output


def test_config_check_lists_every_problem_and_exits_1(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_URL", "ftp://files.example.com/media")
    monkeypatch.setenv("BROKER_URL", "kafka://broker")
    monkeypatch.setenv("IMAGE_PIPELINE_LOG_FORMAT", "xml")
    result = runner.invoke(main, ["config", "check"])
    assert result.exit_code == 1
    assert "3 problem(s)" in result.output
    for name in ("STORAGE_URL", "BROKER_URL", "IMAGE_PIPELINE_LOG_FORMAT"):
        assert name in result.output


def test_config_check_prints_the_settings_without_secrets(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_URL", "amqp://app:hunter2@rabbit:5672//")
    monkeypatch.setenv("STORAGE_URL", "s3://media-bucket/site")
    monkeypatch.setenv(
        "IMAGE_PIPELINE_SINKS",
        '{"avatar": [{"type": "webhook", "url": "https://a.example/h", '
        '"secret": "s3cr3t"}]}',
    )
    result = runner.invoke(main, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "Configuration is valid." in result.output
    assert "BROKER_URL=amqp://app:***@rabbit:5672//" in result.output
    assert "STORAGE_URL=s3://media-bucket/site" in result.output
    assert "hunter2" not in result.output and "s3cr3t" not in result.output
    assert len(result.output.splitlines()) == 1 + len(describe())


def test_config_docs_prints_a_row_per_setting(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "docs"])
    assert result.exit_code == 0
    rows = result.output.splitlines()
    assert rows[:2] == ["| variable | default | meaning |", "|---|---|---|"]
    assert [row.split("`")[1] for row in rows[2:]] == [env for env, _, _ in describe()]


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["import", "--help"],
        ["status", "--help"],
        ["requeue", "--help"],
        ["stats", "--help"],
        ["config", "--help"],
        ["config", "check", "--help"],
        ["config", "docs", "--help"],
        ["worker", "--help"],
    ],
)
def test_every_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(main, command)
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_worker_help_offers_queues_and_autoscale(runner: CliRunner) -> None:
    output = runner.invoke(main, ["worker", "--help"]).output
    for option in ("--queues", "--autoscale", "--hostname", "--metrics-port"):
        assert option in output


def _jobs_of(
    pipeline: ImagePipeline, source_id: str, source_type: str = "avatar"
) -> list[str]:
    from sqlalchemy import select

    from app.models import MediaQueue

    query = select(MediaQueue.id).where(
        MediaQueue.source_type == source_type, MediaQueue.source_id == source_id
    )
    with pipeline.db.transaction() as session:
        return list(session.scalars(query))


def _fail(pipeline: ImagePipeline, job_id: str) -> None:
    claim = pipeline.jobs.claim(job_id, 60)
    assert claim is not None
    claim = type(claim)(**{**claim.__dict__, "attempts": claim.max_attempts})
    assert pipeline.jobs.release(claim, "storage_unavailable", "down") is Status.FAILED
