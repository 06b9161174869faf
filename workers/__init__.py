"""The Celery side: the app bound to Flask, its settings and the dispatcher.

Follows Flask's Celery pattern: :func:`celery_init_app` makes a Celery app
whose tasks run inside the Flask app context and stores it in
``app.extensions["celery"]``; ``workers.main`` is the module that ``celery
worker`` and ``celery beat`` point at.

The settings below are what make the pipeline's promise hold (every accepted
upload ends in exactly one terminal state): tasks are acknowledged late and
prefetched one at a time, a crashed task is not re-queued by Celery (the
reaper hands its job back once the lease expires, and counts the attempt),
and publishing gives up quickly so an upload never hangs on a broker outage.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from flask import Flask

from app.config import Settings
from app.extension import ImagePipeline

log = logging.getLogger(__name__)

QUEUE = "image-pipeline"
PROCESS_TASK = "image_pipeline.process"
REAP_TASK = "image_pipeline.reap"
DELIVER_TASK = "image_pipeline.deliver"
REPROCESS_TASK = "image_pipeline.reprocess"


def celery_init_app(app: Flask) -> Celery:
    pipeline: ImagePipeline = app.extensions["image_pipeline"]

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(
        app.name, task_cls=FlaskTask, include=["workers.tasks", "workers.lifecycle"]
    )
    celery_app.conf.update(celery_config(pipeline.settings))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    pipeline.dispatch = Dispatcher(celery_app, pipeline.settings)
    return celery_app


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": _transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.dispatch_timeout,
        "task_default_queue": QUEUE,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "task_acks_on_failure_or_timeout": True,
        "task_soft_time_limit": settings.soft_time_limit,
        "task_time_limit": settings.hard_time_limit,
        "task_publish_retry": True,
        "task_publish_retry_policy": _publish_retry(settings),
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.worker_concurrency or None,
        "worker_max_memory_per_child": settings.worker_max_memory_kb,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "reap": {"task": REAP_TASK, "schedule": settings.reaper_interval},
            "deliver": {"task": DELIVER_TASK, "schedule": settings.delivery_interval},
        },
        "beat_schedule_filename": f"{settings.data_dir}/celerybeat-schedule",
    }


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded_broker:
        # Kombu hands these to SQLAlchemy's create_engine for the broker file.
        return {"connect_args": {"timeout": 30}}
    return {
        "visibility_timeout": settings.visibility_timeout,
        "socket_connect_timeout": settings.dispatch_timeout,
        "socket_timeout": max(settings.dispatch_timeout, 5.0),
        "max_retries": 1,
    }


def _publish_retry(settings: Settings) -> dict[str, float]:
    return {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": settings.dispatch_timeout / 4,
        "interval_max": settings.dispatch_timeout / 4,
    }


class Dispatcher:
    """Sends a job's task; a broker failure is logged, never raised.

    The job is already durable when this runs, so a failed send only delays
    it: the reaper dispatches PENDING jobs that no worker took.
    """

    def __init__(self, celery_app: Celery, settings: Settings) -> None:
        self.celery_app = celery_app
        self.settings = settings

    def __call__(self, job_id: str) -> None:
        try:
            self.celery_app.send_task(PROCESS_TASK, args=[job_id], queue=QUEUE)
        except Exception as exc:  # the broker client raises many kinds
            log.warning(
                "job %s: dispatch failed (%s); the reaper will retry in %.0f s",
                job_id,
                type(exc).__name__,
                self.settings.pending_grace,
            )
