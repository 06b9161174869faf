"""Health, readiness, metrics and JSON logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app.db import Database
from app.extension import ImagePipeline
from app.logs import JsonFormatter, configure_logging
from app.metrics import jobs_registry
from app.processing import Result
from app.storage import LocalStorage
from tests.images import image_bytes
from tests.service import free_port


def upload(client: FlaskClient, data: bytes, source_type: str = "gallery") -> int:
    response = client.post(
        "/image-pipeline/upload",
        data={
            "file": (io.BytesIO(data), "x.jpg"),
            "sourceType": source_type,
            "sourceId": "7",
        },
        content_type="multipart/form-data",
    )
    return response.status_code


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_healthz_answers_without_touching_dependencies(
    client: FlaskClient, pipeline: ImagePipeline, tmp_path: Path
) -> None:
    pipeline.db.engine.dispose()
    pipeline.storage = LocalStorage("/proc/no-such-dir")
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_reports_every_dependency_ready(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
    }


def test_readyz_answers_503_naming_the_storage_when_it_is_down(
    client: FlaskClient, pipeline: ImagePipeline, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    pipeline.storage = LocalStorage(blocker / "media")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["checks"] == {
        "database": "ok",
        "broker": "ok",
        "storage": "unreachable",
    }
    assert response.json["error"] == "Not ready: storage did not answer."


def test_readyz_names_the_broker_when_it_is_down(
    client: FlaskClient, app: object
) -> None:
    celery = client.application.extensions["celery"]
    celery.conf.broker_url = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["checks"]["broker"] in ("unreachable", "timed out")
    assert response.json["checks"]["database"] == "ok"


def test_metrics_show_jobs_queue_depth_and_oldest_pending(
    client: FlaskClient, dispatched: list[str]
) -> None:
    assert upload(client, image_bytes((300, 200))) == 202
    assert upload(client, image_bytes((300, 200)), "avatar") == 202
    samples = scrape(client)
    pending = ("status", "PENDING")
    for source_type in ("avatar", "gallery"):
        labels = (("source_type", source_type), pending)
        assert samples[("image_pipeline_jobs", labels)] == 1
    assert samples[("image_pipeline_queue_depth", ())] == 2
    assert samples[("image_pipeline_oldest_pending_age_seconds", ())] >= 0
    assert samples[("image_pipeline_database_up", ())] == 1


def test_metrics_count_refused_uploads_by_code(client: FlaskClient) -> None:
    key = (
        "image_pipeline_rejections_total",
        (("code", "unsupported_format"), ("stage", "upload")),
    )
    before = scrape(client).get(key, 0.0)
    assert upload(client, b"<svg xmlns='http://www.w3.org/2000/svg'/>") == 415
    assert scrape(client)[key] == before + 1


def test_metrics_time_each_stage_of_a_job(
    client: FlaskClient, run_jobs: Callable[[], list[Result]]
) -> None:
    def count(stage: str) -> float:
        value = REGISTRY.get_sample_value(
            "image_pipeline_stage_seconds_count", {"stage": stage}
        )
        return value or 0.0

    before = {stage: count(stage) for stage in ("load", "render", "store")}
    assert upload(client, image_bytes((400, 300))) == 202
    assert [str(result.outcome) for result in run_jobs()] == ["COMPLETE"]
    assert {stage: count(stage) - before[stage] for stage in before} == {
        "load": 1,
        "render": 1,
        "store": 1,
    }


def test_metrics_report_the_database_down_instead_of_failing(
    client: FlaskClient,
) -> None:
    closed = Database(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    client.application.extensions["image_pipeline_metrics"] = jobs_registry(closed)
    samples = scrape(client)
    closed.dispose()
    assert samples[("image_pipeline_database_up", ())] == 0
    assert ("image_pipeline_queue_depth", ()) not in samples


def test_json_log_lines_carry_the_job_id() -> None:
    record = logging.LogRecord(
        "workers.tasks",
        logging.INFO,
        __file__,
        1,
        "process_image[%s] %s in %.0f ms",
        ("job-1", "COMPLETE", 412.0),
        None,
    )
    record.job_id = "job-1"
    record.outcome = "COMPLETE"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "process_image[job-1] COMPLETE in 412 ms"
    assert (line["level"], line["logger"]) == ("INFO", "workers.tasks")
    assert (line["job_id"], line["outcome"]) == ("job-1", "COMPLETE")
    assert line["time"].endswith("+00:00")


def test_configure_logging_installs_one_json_handler_and_quiets_celery() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(json_lines=True)
        configure_logging(json_lines=True)
        added = [h for h in root.handlers if h not in saved[0]]
        assert len(added) == 1
        assert isinstance(added[0].formatter, JsonFormatter)
        assert logging.getLogger("celery.app.trace").level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
