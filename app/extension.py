"""The Flask extension: the service's Python API and the owner of its parts.

``app.extensions["image_pipeline"]`` is an :class:`ImagePipeline`. It holds the
settings, database, storage and presets, and offers what the HTTP routes
offer: :meth:`submit`, :meth:`get_status` and :meth:`list_media`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.config import Settings
from app.db import Database
from app.delivery import Deliverer, DeliveryPolicy
from app.errors import (
    BadRequest,
    DatabaseUnavailable,
    ImageRejected,
    PayloadTooLarge,
    RateLimited,
    StorageError,
)
from app.imaging import sniff
from app.jobs import JobStore
from app.models import Media, MediaQueue, Status
from app.processing import Processor
from app.records import MediaQueueRecord, MediaRecord
from app.routing import looks_animated
from app.security import Authenticate, Authenticator, UploadQuota, parse_api_keys
from app.sinks import CallableSink, build_sinks
from app.storage import Storage, open_storage, original_key

log = logging.getLogger(__name__)

Source = bytes | IO[bytes] | str | os.PathLike[str]
Dispatch = Callable[[str], None]

SOURCE_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SOURCE_TYPE_RULE = (
    "sourceType must be 1-64 letters, digits, '.', '_' or '-', "
    "starting with a letter or digit."
)
MAX_SOURCE_ID = 255
SOURCE_ID_RULE = f"sourceId must be at most {MAX_SOURCE_ID} printable characters."
SNIFF_BYTES = 64


@dataclass(frozen=True)
class Owner:
    source_type: str
    source_id: str
    principal: str | None


@dataclass(frozen=True)
class Accepted:
    job_id: str
    status: Status
    created: bool
    """False when an earlier job with the same key or bytes was returned."""


def is_job_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


class ImagePipeline:
    """The pipeline's parts and its Python API.

    ``authenticate``, if given, maps each API request to a principal (or
    ``None`` to refuse it with 401), for hosts that authenticate requests
    themselves; otherwise ``IMAGE_PIPELINE_AUTH`` decides.
    """

    def __init__(
        self,
        app: Flask | None = None,
        settings: Settings | None = None,
        *,
        authenticate: Authenticate | None = None,
    ) -> None:
        self.dispatch: Dispatch = _undispatched
        self._authenticate = authenticate
        if app is not None:
            self.init_app(app, settings)

    def init_app(self, app: Flask, settings: Settings | None = None) -> None:
        self.settings = (settings or Settings.from_env()).check()
        self.authenticator = Authenticator(
            self.settings.auth,
            parse_api_keys(self.settings.api_keys),
            self._authenticate,
        )
        self.quota = UploadQuota(
            self.settings.upload_rate,
            self.settings.upload_rate_per_address,
            self.settings.redis_url,
        )
        self.db = Database(self.settings.sqlalchemy_url)
        self.jobs = JobStore(self.db)
        self.storage: Storage = open_storage(
            self.settings.storage_url, self.settings.storage_options()
        )
        self.presets = self.settings.presets()
        self.processor = Processor(self.settings, self.jobs, self.storage, self.presets)
        self.deliverer = Deliverer(
            self,
            build_sinks(self.settings.sinks(), self.settings.webhook_timeout),
            DeliveryPolicy(
                max_attempts=self.settings.delivery_max_attempts,
                backoff_base=self.settings.delivery_backoff,
            ),
        )
        app.extensions["image_pipeline"] = self

        from app.api import register
        from app.demo import blueprint as demo_page
        from app.ops import init_app as init_ops
        from app.wire import init_app as init_wire

        register(app, self)
        app.register_blueprint(demo_page)
        init_ops(app, self)
        init_wire(app, self.settings)

    def submit(
        self,
        data: Source,
        source_type: str,
        source_id: str,
        *,
        idempotency_key: str | None = None,
        focus: tuple[float, float] | None = None,
        principal: str | None = None,
    ) -> str:
        """Accept an image for an owner; returns the job's id. See :meth:`accept`."""
        return self.accept(
            data,
            source_type,
            source_id,
            idempotency_key=idempotency_key,
            focus=focus,
            principal=principal,
        ).job_id

    def accept(
        self,
        data: Source,
        source_type: str,
        source_id: str,
        *,
        idempotency_key: str | None = None,
        focus: tuple[float, float] | None = None,
        principal: str | None = None,
    ) -> Accepted:
        """Accept an image for an owner: the job, new or found again.

        The original is stored and the job committed before the task is sent,
        so an accepted job is never lost: if the broker is down, the reaper
        dispatches it later. The same ``idempotency_key`` from the same owner
        returns the first job instead of a new one; so do identical bytes in
        source types listed in ``IMAGE_PIPELINE_DEDUPE``. ``focus`` (x, y, as
        shares 0-1 of the upright image) centres square crops on that point.
        ``principal`` (who uploads, when authentication is on) owns the job.

        Raises ``BadRequest``, ``PayloadTooLarge``, ``ImageRejected`` for input
        it refuses, ``RateLimited`` when the principal has too many unfinished
        jobs, and a ``TransientError`` when the job could not be made durable
        (nothing is left behind then).
        """
        check_owner(source_type, source_id)
        check_idempotency_key(idempotency_key)
        check_focus(focus)
        owner = Owner(source_type, source_id, principal)
        if idempotency_key and (found := self._find(owner, idempotency_key, None)):
            return found
        self._check_active_jobs(principal)
        payload = self._read(data)
        digest = None
        if source_type in self.settings.dedupe:
            digest = hashlib.sha256(payload).hexdigest()
            if found := self._find(owner, None, digest):
                return found
        return self._create(owner, payload, idempotency_key, digest, focus)

    def _check_active_jobs(self, principal: str | None) -> None:
        cap = self.settings.max_active_jobs
        if principal is None or not cap:
            return
        query = (
            select(func.count())
            .select_from(MediaQueue)
            .where(
                MediaQueue.principal == principal,
                MediaQueue.status.in_([Status.PENDING, Status.PROCESSING]),
            )
        )
        with self.db.transaction() as session:
            active = session.scalar(query) or 0
        if active >= cap:
            raise RateLimited(
                f"You have {active} uploads still processing; the limit is {cap}. "
                "Try again when some have finished.",
                retry_after=5,
            )

    def _create(
        self,
        owner: Owner,
        payload: bytes,
        idempotency_key: str | None,
        digest: str | None,
        focus: tuple[float, float] | None,
    ) -> Accepted:
        job_id = str(uuid.uuid4())
        key = original_key(job_id)
        self.storage.put(key, payload, "application/octet-stream")
        try:
            self.jobs.create(
                job_id,
                source_type=owner.source_type,
                source_id=owner.source_id,
                principal=owner.principal,
                original_key=key,
                original_bytes=len(payload),
                max_attempts=self.settings.max_attempts,
                animated=looks_animated(payload),
                idempotency_key=idempotency_key,
                content_sha256=digest,
                focus=focus,
            )
        except IntegrityError:
            # A concurrent upload with the same key or bytes won the race.
            self.discard(key)
            found = self._find(owner, idempotency_key, digest)
            if found is None:
                raise
            return found
        except DatabaseUnavailable:
            self.discard(key)
            raise
        self.dispatch(job_id)
        return Accepted(job_id, Status.PENDING, created=True)

    def _find(
        self, owner: Owner, idempotency_key: str | None, digest: str | None
    ) -> Accepted | None:
        """The owner's job with this key or these bytes, if any.

        A FAILED job with the same bytes gives them up, so that uploading them
        again starts afresh.
        """
        query = select(MediaQueue).where(
            MediaQueue.source_type == owner.source_type,
            MediaQueue.source_id == owner.source_id,
            MediaQueue.principal.is_(None)
            if owner.principal is None
            else MediaQueue.principal == owner.principal,
        )
        if idempotency_key is not None:
            query = query.where(MediaQueue.idempotency_key == idempotency_key)
        else:
            query = query.where(MediaQueue.content_sha256 == digest)
        with self.db.transaction() as session:
            job = session.scalars(query).first()
            if job is None:
                return None
            if idempotency_key is None and job.status is Status.FAILED:
                job.content_sha256 = None
                return None
            return Accepted(job.id, job.status, created=False)

    def register_sink(
        self,
        source_type: str,
        name: str,
        function: Callable[[MediaQueueRecord], object],
    ) -> None:
        """Deliver completed jobs of ``source_type`` ("*": all) to ``function``.

        Register it in the app factory, so that the worker that runs deliveries
        has it too. It is called at least once per job and must be idempotent.
        """
        self.deliverer.register(source_type, CallableSink(name, function))

    def delete_media(self, media_id: str, *, principal: str | None = None) -> bool:
        """Delete a media, its job and every stored object; ``False`` if absent.

        With ``principal`` (and ownership on), another principal's media counts
        as absent. Rows go first, in one transaction; stored objects after. An
        object that cannot be removed then is left to the orphan collector.
        """
        with self.db.transaction() as session:
            media = session.get(Media, media_id) if is_job_id(media_id) else None
            if media is None:
                return False
            job = session.get_one(MediaQueue, media.job_id)
            if not self._visible(job, principal):
                return False
            keys = [info["key"] for info in media.variants.values()]
            keys.append(job.original_key)
            session.delete(media)
            session.delete(job)
        for key in keys:
            self.discard(key)
        return True

    def prune_owner(self, source_type: str, source_id: str) -> int:
        """Delete an owner's media beyond the newest N its source type keeps."""
        keep = self.settings.keep_latest().get(source_type)
        if keep is None:
            return 0
        stale = [m.id for m in self.list_media(source_type, source_id)[keep:]]
        return sum(self.delete_media(media_id) for media_id in stale)

    def get_status(
        self, job_id: str, *, principal: str | None = None
    ) -> MediaQueueRecord | None:
        """The job's record with its media; ``None`` for an unknown id.

        With ``principal`` (and ownership on), another principal's job is
        ``None`` too, exactly like a missing one.
        """
        if not is_job_id(job_id):
            return None
        row = self.jobs.get(job_id)
        if row is None or not self._visible(row, principal):
            return None
        return MediaQueueRecord.from_row(row, self.url_for)

    def list_media(
        self, source_type: str, source_id: str, *, principal: str | None = None
    ) -> list[MediaRecord]:
        """Every completed media of an owner, newest first.

        With ``principal`` (and ownership on), only that principal's uploads.
        """
        query = (
            select(Media)
            .where(Media.source_type == source_type, Media.source_id == source_id)
            .order_by(Media.created_at.desc(), Media.id.desc())
        )
        if principal is not None and self.settings.ownership:
            query = query.join(MediaQueue).where(MediaQueue.principal == principal)
        with self.db.transaction() as session:
            rows = session.scalars(query).all()
            return [MediaRecord.from_row(row, self.url_for) for row in rows]

    def _visible(self, job: MediaQueue, principal: str | None) -> bool:
        if principal is None or not self.settings.ownership:
            return True
        return job.principal == principal

    def url_for(self, key: str) -> str:
        return f"{self.settings.public_media_url.rstrip('/')}/{key}"

    def _read(self, data: Source) -> bytes:
        limit = self.settings.max_upload_bytes
        if isinstance(data, bytes):
            payload = data
        elif isinstance(data, str | os.PathLike):
            with Path(data).open("rb") as handle:
                payload = handle.read(limit + 1)
        else:
            payload = data.read(limit + 1)
        if len(payload) > limit:
            raise PayloadTooLarge(
                f"The upload is larger than the limit of {limit:,} bytes."
            )
        check_image_bytes(payload)
        return payload

    def discard(self, key: str) -> None:
        """Remove a stored object; a failure is logged for the orphan collector."""
        try:
            self.storage.delete(key)
        except StorageError:
            log.warning("could not remove stored object %s; left to the collector", key)


def check_owner(source_type: object, source_id: object) -> None:
    if not isinstance(source_type, str) or not source_type:
        raise BadRequest("sourceType is required.")
    if not SOURCE_TYPE.match(source_type):
        raise BadRequest(SOURCE_TYPE_RULE)
    if not isinstance(source_id, str) or not source_id:
        raise BadRequest("sourceId is required.")
    if len(source_id) > MAX_SOURCE_ID or not source_id.isprintable():
        raise BadRequest(SOURCE_ID_RULE)


def check_idempotency_key(key: str | None) -> None:
    if key is not None and (
        not key
        or len(key) > MAX_SOURCE_ID
        or not key.isascii()
        or not key.isprintable()
    ):
        raise BadRequest(
            f"Idempotency-Key must be 1-{MAX_SOURCE_ID} printable ASCII characters."
        )


def check_focus(focus: tuple[float, float] | None) -> None:
    if focus is not None and not all(0.0 <= share <= 1.0 for share in focus):
        raise BadRequest(
            f"The focal point {focus} must be two shares between 0 and 1 "
            "(x of the width, y of the height)."
        )


def check_image_bytes(payload: bytes) -> None:
    """Refuse, from its first bytes, an upload that is not an allowed image."""
    if not payload:
        raise ImageRejected("The file is empty.", code="empty_file")
    if sniff(payload[:SNIFF_BYTES]) is None:
        raise ImageRejected(
            "The file is not an image of an allowed type (JPEG, PNG, WebP, GIF, "
            "HEIC, AVIF or TIFF).",
            code="unsupported_format",
        )


def _undispatched(job_id: str) -> None:
    log.warning("job %s: no Celery app is set up; the reaper will dispatch it", job_id)
