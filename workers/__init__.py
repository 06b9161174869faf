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
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.beat import PersistentScheduler
from flask import Flask
from kombu.entity import Exchange, Queue

from app.config import Settings
from app.errors import TransientError
from app.extension import ImagePipeline
from app.jobs import JobStore
from app.routing import is_heavy
from workers import embedded_broker, sandbox

log = logging.getLogger(__name__)

QUEUE = "image-pipeline"
CONTROL_QUEUE = "image-pipeline.control"
"""Periodic tasks, so that a backlog of images never delays the reaper."""
HEAVY_QUEUE = "image-pipeline-heavy"
"""Large originals and animations, for workers sized for them (see route)."""
PROCESS_TASK = "image_pipeline.process"
REAP_TASK = "image_pipeline.reap"
COLLECT_TASK = "image_pipeline.collect"
DELIVER_TASK = "image_pipeline.deliver"
REPROCESS_TASK = "image_pipeline.reprocess"


def celery_init_app(app: Flask) -> Celery:
    pipeline: ImagePipeline = app.extensions["image_pipeline"]

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    if pipeline.settings.embedded_broker:
        embedded_broker.register()
    celery_app = Celery(
        app.name, task_cls=FlaskTask, include=["workers.tasks", "workers.lifecycle"]
    )
    celery_app.conf.update(celery_config(pipeline.settings))
    sandbox.install(pipeline.settings)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    pipeline.dispatch = Dispatcher(celery_app, pipeline.settings, pipeline.jobs)
    return celery_app


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": _transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.dispatch_timeout,
        "task_default_queue": QUEUE,
        # Each queue has its own exchange and key: with one shared key, as
        # Celery would fill in, AMQP would copy every task into every queue.
        "task_queues": [
            Queue(name, Exchange(name), routing_key=name)  # type: ignore[no-untyped-call]
            for name in (QUEUE, CONTROL_QUEUE, HEAVY_QUEUE)
        ],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "task_acks_on_failure_or_timeout": True,
        "task_soft_time_limit": settings.soft_time_limit,
        "task_time_limit": settings.hard_time_limit,
        "task_publish_retry": True,
        "task_publish_retry_policy": _publish_retry(settings),
        "worker_prefetch_multiplier": 1,
        # Task events, so that Flower and `celery events` work unmodified.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_concurrency": settings.worker_concurrency or None,
        "worker_max_memory_per_child": settings.worker_max_memory_kb,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "reap": {
                "task": REAP_TASK,
                "schedule": settings.reaper_interval,
                # A reap that waited a whole interval is superseded by the next.
                "options": {
                    "queue": CONTROL_QUEUE,
                    "expires": settings.reaper_interval,
                },
            },
            "collect": {
                "task": COLLECT_TASK,
                "schedule": settings.collect_interval,
                "options": {
                    "queue": CONTROL_QUEUE,
                    "expires": settings.collect_interval,
                },
            },
            "deliver": {
                "task": DELIVER_TASK,
                "schedule": settings.delivery_interval,
                "options": {
                    "queue": CONTROL_QUEUE,
                    "expires": settings.delivery_interval,
                },
            },
        },
        "beat_scheduler": "workers:Scheduler",
        "beat_schedule_filename": f"{settings.data_dir}/celerybeat-schedule",
    }


class Scheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's file-backed schedule, which first makes its file's directory.

    Without this, beat started where the data directory does not exist yet
    (a fresh container) fails to open the file and runs no reaper.
    """

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded_broker:
        # Kombu hands these to SQLAlchemy's create_engine for the broker file.
        return {"connect_args": {"timeout": 30}}
    if settings.broker_kind == "amqp":
        # RabbitMQ keeps an unacknowledged task until its consumer_timeout
        # (30 min by default) instead of a visibility timeout; publisher
        # confirms make an accepted upload's task durable once sent.
        return {"confirm_publish": True}
    return {
        "visibility_timeout": settings.visibility_timeout,
        "socket_connect_timeout": settings.dispatch_timeout,
        "socket_timeout": max(settings.dispatch_timeout, 5.0),
        "max_retries": 1,
    }


def _publish_retry(settings: Settings) -> dict[str, float]:
    return {"max_retries": 1, "interval_start": 0, "interval_step": 0}


DISPATCH_CONNECTIONS = 32
"""Broker connections a process keeps for sending tasks; more callers wait."""


class Dispatcher:
    """Sends a job's task; a broker failure is logged, never raised.

    The job is already durable when this runs, so a failed send only delays
    it: the reaper dispatches PENDING jobs that no worker took.
    """

    def __init__(self, celery_app: Celery, settings: Settings, jobs: JobStore) -> None:
        self.celery_app = celery_app
        self.settings = settings
        self.jobs = jobs
        self._pool: Any = None

    def __call__(self, job_id: str) -> None:
        queue = self.queue_for(job_id)
        timeout = self.settings.dispatch_timeout
        try:
            with self._connections().acquire(block=True, timeout=timeout) as conn:
                self.celery_app.send_task(
                    PROCESS_TASK, args=[job_id], queue=queue, connection=conn
                )
        except Exception as exc:  # the broker client raises many kinds
            log.warning(
                "job %s: dispatch failed (%s); the reaper will retry in %.0f s",
                job_id,
                type(exc).__name__,
                self.settings.pending_grace,
            )

    def _connections(self) -> Any:
        """Broker connections whose every wait is a fraction of the timeout.

        A request that waits for the broker holds a request thread, so each
        socket operation here gives up after half the dispatch timeout and a
        lost connection is not retried in place (the publish retries once).
        The worker's own connections keep the longer waits of the transport
        options: a slow broker must not drop its consumer.
        """
        if self._pool is None:
            options: dict[str, Any] = {}
            if self.settings.broker_kind == "redis":
                wait = self.settings.dispatch_timeout / 2
                options = {
                    "socket_connect_timeout": wait,
                    "socket_timeout": wait,
                    "max_retries": 0,
                }
            connection = self.celery_app.connection_for_write(transport_options=options)
            self._pool = connection.Pool(limit=DISPATCH_CONNECTIONS)
        return self._pool

    def queue_for(self, job_id: str) -> str:
        """The heavy queue for large or animated originals, else the default.

        A database hiccup here must not lose the send: the job then goes to
        the default queue, whose workers can render anything.
        """
        try:
            facts = self.jobs.routing(job_id)
        except TransientError:
            return QUEUE
        if facts and is_heavy(*facts, threshold=self.settings.heavy_bytes):
            return HEAVY_QUEUE
        return QUEUE
