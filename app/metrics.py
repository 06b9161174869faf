"""Prometheus metrics: what each process counts, and what the database knows.

Two kinds, because web and workers are separate processes, often on
separate machines:

- Counted where it happens: the time each stage of a job takes
  (``image_pipeline_stage_seconds``, in the worker) and rejected images by
  code (``image_pipeline_rejections_total``, at upload and in the worker).
  Gunicorn and Celery's prefork pool run several processes, so these use
  prometheus-client's multiprocess mode whenever ``PROMETHEUS_MULTIPROC_DIR``
  is set: each process writes its values to files there and one scrape adds
  them up. ``image-pipeline worker --metrics-port`` sets a directory of its
  own and serves its children's values.
- Read from the database at scrape time (:class:`JobsCollector`, on the web's
  ``/metrics``): jobs by status and source type, the queue depth and the age
  of the oldest PENDING job. These are the cluster's truth whichever process
  is scraped, and need no worker to be up.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from app.db import Database
from app.errors import TransientError
from app.stats import job_stats

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

STAGE_SECONDS = Histogram(
    "image_pipeline_stage_seconds",
    "Time a job spends in each stage: load the original, render, store.",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REJECTIONS = Counter(
    "image_pipeline_rejections",
    "Images refused, by rejection code and where (upload or worker).",
    ["code", "stage"],
)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Observe the block's duration as ``stage`` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage=stage).observe(time.perf_counter() - started)


def process_registry() -> CollectorRegistry:
    """This process's metrics, or all processes' in multiprocess mode."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class JobsCollector:
    """Gauges read from the job table on each scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "image_pipeline_database_up", "1 when the scrape could read the jobs."
        )
        try:
            stats = job_stats(self.db)
        except TransientError:
            log.warning("metrics: the database could not be read")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        jobs = GaugeMetricFamily(
            "image_pipeline_jobs",
            "Jobs by status and source type.",
            labels=["status", "source_type"],
        )
        for (status, source_type), count in sorted(stats.counts.items()):
            jobs.add_metric([status, source_type], count)
        depth = GaugeMetricFamily(
            "image_pipeline_queue_depth", "PENDING jobs: accepted, not yet claimed."
        )
        depth.add_metric([], stats.queue_depth)
        oldest = GaugeMetricFamily(
            "image_pipeline_oldest_pending_age_seconds",
            "Age of the oldest PENDING job; 0 when none waits.",
        )
        oldest.add_metric([], stats.oldest_pending_age or 0.0)
        return [up, jobs, depth, oldest]


def jobs_registry(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(db))
    return registry


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text format of several registries, one after the other."""
    return b"".join(generate_latest(registry) for registry in registries)
