"""The Flask extension: the service's Python API and the owner of its parts.

``app.extensions["image_pipeline"]`` is an :class:`ImagePipeline`. It holds the
settings, database, storage and presets, and offers what the HTTP routes
offer: :meth:`submit`, :meth:`get_status` and :meth:`list_media`.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from flask import Flask
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.errors import (
    BadRequest,
    DatabaseUnavailable,
    ImageRejected,
    PayloadTooLarge,
    StorageError,
)
from app.imaging import sniff
from app.jobs import JobStore
from app.models import Media
from app.processing import Processor
from app.records import MediaQueueRecord, MediaRecord
from app.storage import Storage, open_storage, original_key

log = logging.getLogger(__name__)

Source = bytes | IO[bytes] | str | os.PathLike[str]
Dispatch = Callable[[str], None]

SOURCE_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SOURCE_ID = 255
SNIFF_BYTES = 64


def is_job_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


class ImagePipeline:
    def __init__(self, app: Flask | None = None, settings: Settings | None = None):
        self.dispatch: Dispatch = _undispatched
        if app is not None:
            self.init_app(app, settings)

    def init_app(self, app: Flask, settings: Settings | None = None) -> None:
        self.settings = (settings or Settings.from_env()).check()
        self.db = Database(self.settings.sqlalchemy_url)
        self.jobs = JobStore(self.db)
        self.storage: Storage = open_storage(self.settings.storage_url)
        self.presets = self.settings.presets()
        self.processor = Processor(self.settings, self.jobs, self.storage, self.presets)
        app.extensions["image_pipeline"] = self

        from app.api import blueprint, register_error_handlers

        app.register_blueprint(blueprint, url_prefix="/image-pipeline")
        register_error_handlers(app)

    def submit(self, data: Source, source_type: str, source_id: str) -> str:
        """Accept an image for an owner; returns the new job's id.

        The original is stored and the job committed before the task is sent,
        so an accepted job is never lost: if the broker is down, the reaper
        dispatches it later. Raises ``BadRequest``, ``PayloadTooLarge``,
        ``ImageRejected`` for input it refuses, and a ``TransientError`` when
        the job could not be made durable (nothing is left behind then).
        """
        check_owner(source_type, source_id)
        payload = self._read(data)
        job_id = str(uuid.uuid4())
        key = original_key(job_id)
        self.storage.put(key, payload, "application/octet-stream")
        try:
            self.jobs.create(
                job_id,
                source_type=source_type,
                source_id=source_id,
                original_key=key,
                original_bytes=len(payload),
                max_attempts=self.settings.max_attempts,
            )
        except DatabaseUnavailable:
            self._forget(key)
            raise
        self.dispatch(job_id)
        return job_id

    def get_status(self, job_id: str) -> MediaQueueRecord | None:
        """The job's record with its media; ``None`` for an unknown id."""
        if not is_job_id(job_id):
            return None
        row = self.jobs.get(job_id)
        return MediaQueueRecord.from_row(row, self.url_for) if row else None

    def list_media(self, source_type: str, source_id: str) -> list[MediaRecord]:
        """Every completed media of an owner, newest first."""
        query = (
            select(Media)
            .where(Media.source_type == source_type, Media.source_id == source_id)
            .order_by(Media.created_at.desc(), Media.id.desc())
        )
        with self.db.transaction() as session:
            rows = session.scalars(query).all()
            return [MediaRecord.from_row(row, self.url_for) for row in rows]

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

    def _forget(self, key: str) -> None:
        try:
            self.storage.delete(key)
        except StorageError:
            log.warning("could not remove original %s after a failed upload", key)


def check_owner(source_type: object, source_id: object) -> None:
    if not isinstance(source_type, str) or not source_type:
        raise BadRequest("sourceType is required.")
    if not SOURCE_TYPE.match(source_type):
        raise BadRequest(
            "sourceType must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    if not isinstance(source_id, str) or not source_id:
        raise BadRequest("sourceId is required.")
    if len(source_id) > MAX_SOURCE_ID or not source_id.isprintable():
        raise BadRequest(
            f"sourceId must be at most {MAX_SOURCE_ID} printable characters."
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
