"""Tasks for media after COMPLETE: delivery to sinks, and re-rendering."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from app.errors import TransientError
from app.extension import ImagePipeline
from app.reprocess import reprocess
from workers import DELIVER_TASK, REPROCESS_TASK

log = logging.getLogger(__name__)


def _pipeline() -> ImagePipeline:
    pipeline: ImagePipeline = current_app.extensions["image_pipeline"]
    return pipeline


@shared_task(name=DELIVER_TASK)  # type: ignore[untyped-decorator]
def deliver() -> int:
    """One delivery cycle; beat runs it every IMAGE_PIPELINE_DELIVERY_INTERVAL."""
    report = _pipeline().deliverer.run_once()
    if report.delivered or report.retried or report.failed:
        log.info(
            "deliver: %d delivered, %d superseded, %d to retry, %d failed",
            report.delivered,
            report.superseded,
            report.retried,
            report.failed,
        )
    return report.delivered


@shared_task(  # type: ignore[untyped-decorator]
    name=REPROCESS_TASK,
    autoretry_for=(TransientError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def reprocess_media(media_id: str) -> str:
    outcome = reprocess(_pipeline(), media_id)
    log.info("reprocess[%s] %s", media_id, outcome)
    return str(outcome)
