"""Re-rendering media whose preset has changed since it was made.

Every ``Media`` records the version of the preset that rendered it. When a
preset's settings change, its version changes, and the media it made are
outdated. Re-rendering one reads the job's original again, stores the new
variants under the new version's keys, swaps the row's description in one
conditional update (so two runs never both apply) and removes the old
objects. Sinks then receive the job again with its new URLs.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import rowcount
from app.errors import ImageRejected
from app.imaging import render
from app.models import Delivery, DeliveryStatus, Media, MediaQueue
from app.presets import preset_for

if TYPE_CHECKING:
    from app.extension import ImagePipeline

log = logging.getLogger(__name__)


class Reprocessed(enum.StrEnum):
    UPDATED = "UPDATED"
    CURRENT = "CURRENT"
    """Already made with the current preset; nothing to do."""
    GONE = "GONE"
    """The media was deleted meanwhile."""
    REJECTED = "REJECTED"
    """The new preset cannot render the original (a limit changed)."""


def outdated(pipeline: ImagePipeline, source_type: str | None = None) -> list[str]:
    """Ids of media not made with their preset's current version."""
    query = select(Media.id, Media.source_type, Media.preset_version)
    if source_type is not None:
        query = query.where(Media.source_type == source_type)
    with pipeline.db.transaction() as session:
        rows = session.execute(query.order_by(Media.created_at)).all()
    return [
        media_id
        for media_id, kind, version in rows
        if preset_for(pipeline.presets, kind).version != version
    ]


def reprocess(pipeline: ImagePipeline, media_id: str) -> Reprocessed:
    """Bring one media up to its preset's current version.

    Storage and database errors propagate (``TransientError``) for the
    caller to retry; running it again is always safe.
    """
    with pipeline.db.transaction() as session:
        media = session.get(Media, media_id)
        job = session.get(MediaQueue, media.job_id) if media else None
    if media is None or job is None:
        return Reprocessed.GONE
    preset = preset_for(pipeline.presets, media.source_type)
    if media.preset_version == preset.version:
        return Reprocessed.CURRENT

    original = pipeline.storage.get(job.original_key)
    try:
        rendered = render(original, preset, pipeline.settings.limits, job.focus)
    except ImageRejected as exc:
        log.warning("reprocess %s: %s", media_id, exc.message)
        return Reprocessed.REJECTED
    variants = pipeline.processor.store_variants(job.id, preset, rendered)

    with pipeline.db.transaction() as session:
        result = session.execute(
            update(Media)
            .where(Media.id == media_id, Media.preset_version == media.preset_version)
            .values(
                preset=preset.name,
                preset_version=preset.version,
                variants=variants,
                blurhash=rendered.blurhash,
                dominant_color=rendered.dominant_color,
            )
        )
        if rowcount(result) != 1:
            return Reprocessed.CURRENT
        _deliver_again(session, job.id)

    _remove_old_objects(pipeline, media, variants)
    return Reprocessed.UPDATED


def _deliver_again(session: Session, job_id: str) -> None:
    session.execute(
        update(MediaQueue).where(MediaQueue.id == job_id).values(delivered_at=None)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.job_id == job_id)
        .values(status=DeliveryStatus.PENDING, attempts=0, lease_expires_at=None)
    )


def _remove_old_objects(
    pipeline: ImagePipeline, old: Media, new: dict[str, dict[str, object]]
) -> None:
    keep = {info["key"] for info in new.values()}
    for info in old.variants.values():
        if info["key"] not in keep:
            pipeline.discard(info["key"])
