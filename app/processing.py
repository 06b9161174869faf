"""One job, from claim to terminal state: what a worker runs for each task.

    claim the job ─> load the original ─> render ─> store variants ─> complete

Bad input ends the job REJECTED at once. Transient errors (storage, database)
hand the job back for a retry, or end it FAILED at the attempt cap; so does
anything unexpected, with a message that reveals nothing internal. While the
work runs, a background thread renews the claim's lease.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import uuid
from dataclasses import dataclass
from types import TracebackType

from celery.exceptions import SoftTimeLimitExceeded

from app.config import Settings
from app.errors import ImageRejected, TransientError
from app.imaging import render
from app.imaging.types import Rendered
from app.jobs import Claim, JobStore
from app.metrics import REJECTIONS, timed
from app.models import Media, Status
from app.presets import Preset, preset_for
from app.storage import Storage, variant_key

log = logging.getLogger(__name__)

UNEXPECTED = "internal_error"
UNEXPECTED_MESSAGE = "Processing failed unexpectedly."
TIME_LIMIT = "time_limit"
TIME_LIMIT_MESSAGE = "Processing took longer than the time limit; retrying."


class LeaseLost(Exception):
    """The claim expired mid-work and the job went to another attempt."""


class Outcome(enum.StrEnum):
    COMPLETE = "COMPLETE"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    RETRY = "RETRY"
    """Handed back to PENDING; the caller schedules the next attempt."""
    SKIPPED = "SKIPPED"
    """Not PENDING (another worker has it, or it is done): nothing to do."""
    MISSING = "MISSING"
    """No such row (yet): the task may have outrun the upload's commit."""
    FENCED = "FENCED"
    """The lease was lost mid-work; another attempt owns the job."""


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    attempts: int = 0
    retry_in: float = 0.0


class Processor:
    def __init__(
        self,
        settings: Settings,
        jobs: JobStore,
        storage: Storage,
        presets: dict[str, Preset],
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.storage = storage
        self.presets = presets

    def run(self, job_id: str) -> Result:
        claim = self.jobs.claim(job_id, self.settings.lease_seconds)
        if claim is None:
            exists = self.jobs.exists(job_id)
            return Result(Outcome.SKIPPED if exists else Outcome.MISSING)
        with LeaseKeeper(self.jobs, claim, self.settings):
            return self._attempt(claim)

    def _attempt(self, claim: Claim) -> Result:
        try:
            media = self._make_media(claim)
        except LeaseLost:
            return Result(Outcome.FENCED, claim.attempts)
        except ImageRejected as exc:
            REJECTIONS.labels(code=exc.code, stage="worker").inc()
            self.jobs.reject(claim, exc.code, exc.message)
            return Result(Outcome.REJECTED, claim.attempts)
        except TransientError as exc:
            return self._give_back(claim, exc.code, exc.message)
        except SoftTimeLimitExceeded:
            log.warning("job %s: over the soft time limit", claim.job_id)
            return self._give_back(claim, TIME_LIMIT, TIME_LIMIT_MESSAGE)
        except Exception:
            log.exception("job %s failed unexpectedly", claim.job_id)
            return self._give_back(claim, UNEXPECTED, UNEXPECTED_MESSAGE)
        if not self.jobs.complete(claim, media):
            return Result(Outcome.FENCED, claim.attempts)
        return Result(Outcome.COMPLETE, claim.attempts)

    def _make_media(self, claim: Claim) -> Media:
        # Load the original the upload stored.
        with timed("load"):
            original = self.storage.get(claim.original_key)

        # Render every variant of the owner's preset.
        preset = preset_for(self.presets, claim.source_type)
        with timed("render"):
            rendered = render(original, preset, self.settings.limits, claim.focus)

        # Store only while the claim holds: a worker paused past its lease
        # must not overwrite what the attempt that replaced it stored.
        if not self.jobs.renew(claim, self.settings.lease_seconds):
            raise LeaseLost(claim.job_id)

        # Store the variants under keys fixed by job and preset version.
        with timed("store"):
            variants = self.store_variants(claim.job_id, preset, rendered)

        # Describe them; the caller records this with the terminal state.
        return Media(
            id=str(uuid.uuid4()),
            source_type=claim.source_type,
            source_id=claim.source_id,
            width=rendered.width,
            height=rendered.height,
            blurhash=rendered.blurhash,
            dominant_color=rendered.dominant_color,
            original_format=rendered.original_format,
            preset=preset.name,
            preset_version=preset.version,
            variants=variants,
        )

    def store_variants(
        self, job_id: str, preset: Preset, rendered: Rendered
    ) -> dict[str, dict[str, object]]:
        variants: dict[str, dict[str, object]] = {}
        for variant in rendered.variants:
            key = variant_key(job_id, preset.version, variant.name, variant.format)
            self.storage.put(key, variant.data, variant.content_type)
            variants[variant.name] = {
                "key": key,
                "width": variant.width,
                "height": variant.height,
                "format": variant.format,
                "bytes": variant.bytes,
            }
        return variants

    def _give_back(self, claim: Claim, code: str, message: str) -> Result:
        status = self.jobs.release(claim, code, message)
        if status is None:
            return Result(Outcome.FENCED, claim.attempts)
        if status is Status.FAILED:
            return Result(Outcome.FAILED, claim.attempts)
        return Result(Outcome.RETRY, claim.attempts, self.backoff(claim.attempts))

    def backoff(self, attempts: int) -> float:
        """Exponential delay before attempt ``attempts + 1``, with full jitter."""
        base = self.settings.retry_backoff_base * 2 ** max(attempts - 1, 0)
        ceiling = min(self.settings.retry_backoff_max, base)
        return random.uniform(ceiling / 2, ceiling)


class LeaseKeeper:
    """Renews a claim's lease in the background while the job runs."""

    def __init__(self, jobs: JobStore, claim: Claim, settings: Settings) -> None:
        self.jobs = jobs
        self.claim = claim
        self.lease = settings.lease_seconds
        self.every = settings.lease_renew_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{claim.job_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.jobs.renew(self.claim, self.lease):
                    return
            except TransientError:
                log.warning("job %s: could not renew its lease", self.claim.job_id)
