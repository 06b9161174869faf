"""Operations endpoints: liveness, readiness and Prometheus metrics.

- ``GET /healthz``: the process answers. It checks nothing else, so a
  database outage never makes an orchestrator restart healthy web processes.
- ``GET /readyz``: the database, the broker and the storage each answer
  within ``IMAGE_PIPELINE_READY_TIMEOUT``; otherwise 503, naming which did not.
- ``GET /metrics``: Prometheus text format (see :mod:`app.metrics`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.extension import ImagePipeline
from app.logs import configure_logging
from app.metrics import (
    MULTIPROC_ENV,
    REJECTIONS,
    exposition,
    jobs_registry,
    process_registry,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("image_pipeline_ops", __name__)

UPLOAD_PATH = "/image-pipeline/upload"
REFUSED_IMAGE = frozenset({413, 415})


def init_app(app: Flask, pipeline: ImagePipeline) -> None:
    """Mount the endpoints, count refused uploads, and set the log format."""
    if pipeline.settings.log_format == "json":
        configure_logging(json_lines=True)
    if directory := os.environ.get(MULTIPROC_ENV):
        os.makedirs(directory, exist_ok=True)
    app.extensions["image_pipeline_metrics"] = jobs_registry(pipeline.db)
    app.register_blueprint(blueprint)
    app.after_request(_count_refused_upload)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    pipeline: ImagePipeline = current_app.extensions["image_pipeline"]
    celery_app = current_app.extensions.get("celery")
    checks = {
        "database": lambda: _ping_database(pipeline),
        "broker": lambda: _ping_broker(celery_app, pipeline),
        "storage": pipeline.storage.check,
    }
    results = _run_checks(checks, pipeline.settings.ready_timeout)
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        body = {
            "status": "unavailable",
            "error": f"Not ready: {', '.join(failed)} did not answer.",
            "code": "not_ready",
            "checks": results,
        }
        return jsonify(body), 503
    return jsonify(status="ready", checks=results), 200


@blueprint.get("/metrics")
def metrics() -> Response:
    body = exposition(
        process_registry(), current_app.extensions["image_pipeline_metrics"]
    )
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _run_checks(
    checks: Mapping[str, Callable[[], object]], timeout: float
) -> dict[str, str]:
    """Run the checks side by side; each gets ``timeout`` seconds."""
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    futures = {name: pool.submit(check) for name, check in checks.items()}
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = "timed out"
        except Exception as exc:  # any failure of the dependency counts as down
            log.warning("readyz: %s unreachable: %r", name, exc)
            results[name] = "unreachable"
    # A hung check is left to finish on its own thread; the answer is given.
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def _ping_database(pipeline: ImagePipeline) -> None:
    with pipeline.db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _ping_broker(celery_app: Any, pipeline: ImagePipeline) -> None:
    if celery_app is None:
        raise RuntimeError("no Celery app is set up")
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(
            max_retries=0, timeout=pipeline.settings.ready_timeout
        )


def _count_refused_upload(response: Response) -> Response:
    if (
        request.method == "POST"
        and request.path == UPLOAD_PATH
        and response.status_code in REFUSED_IMAGE
    ):
        body = response.get_json(silent=True) or {}
        REJECTIONS.labels(code=body.get("code", "unknown"), stage="upload").inc()
    return response
