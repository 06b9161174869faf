"""Resource limits for worker children: a bad image costs one job, not a worker.

Every pool child limits itself as it starts (Celery's ``worker_process_init``):

- its address space (``RLIMIT_AS``), so that a decoder allocating past the
  limit gets ``MemoryError``, which the engine turns into a
  ``too_large_to_decode`` rejection, instead of growing until the kernel's
  out-of-memory killer picks a victim;
- its CPU time (``RLIMIT_CPU``), renewed before each task (``task_prerun``)
  because the kernel counts it over the child's whole life. A task that spins
  past its budget is killed by ``SIGXCPU``; the pool replaces the child and
  the reaper hands the job back, as after any crash.

Only pool children are limited: the worker's parent process, and a worker
that runs tasks in its own process, never are.
"""

from __future__ import annotations

import logging
import math
import resource
from dataclasses import dataclass
from typing import Any

from celery.signals import task_prerun, worker_process_init

from app.config import Settings

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    address_space_bytes: int = 0
    """Largest address space of a child; 0 leaves it as it is."""
    cpu_seconds: int = 0
    """CPU seconds one task may use, all threads counted; 0 for no limit."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxLimits:
        return cls(
            address_space_bytes=settings.worker_max_address_space_mb * MIB,
            cpu_seconds=settings.worker_max_cpu_seconds,
        )


_limits = SandboxLimits()
_limited = False
"""Whether this process is a pool child that applied the limits."""


def install(settings: Settings) -> None:
    """Have every pool child started from now on apply the settings' limits."""
    global _limits
    _limits = SandboxLimits.from_settings(settings)
    worker_process_init.connect(
        _on_child_start, weak=False, dispatch_uid="image_pipeline.sandbox.start"
    )
    task_prerun.connect(
        _on_task_start, weak=False, dispatch_uid="image_pipeline.sandbox.task"
    )


def limit_child(limits: SandboxLimits) -> None:
    """Apply ``limits`` to this process; what a pool child runs as it starts."""
    global _limited
    if limits.address_space_bytes:
        _lower(resource.RLIMIT_AS, limits.address_space_bytes)
    renew_cpu_budget(limits)
    _limited = True
    log.debug(
        "worker child limited to %d MiB of address space, %d CPU s per task",
        limits.address_space_bytes // MIB,
        limits.cpu_seconds,
    )


def renew_cpu_budget(limits: SandboxLimits) -> None:
    """Allow ``limits.cpu_seconds`` more CPU time from now on."""
    if not limits.cpu_seconds:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + limits.cpu_seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _lower(which: int, limit: int) -> None:
    """Set both the soft and the hard limit, never raising either."""
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(which, (limit, limit))


def _on_child_start(**_: Any) -> None:
    limit_child(_limits)


def _on_task_start(**_: Any) -> None:
    if _limited:
        renew_cpu_budget(_limits)
