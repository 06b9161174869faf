"""Plain, typed records handed to callers, and their camelCase JSON form.

The ORM rows never leave the service: ``get_status`` and ``list_media``
return these, and the HTTP routes send ``to_json()`` of the same objects, so
both APIs always carry the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import Media, MediaQueue, Status

UrlFor = Callable[[str], str]


@dataclass(frozen=True)
class VariantRecord:
    name: str
    url: str
    width: int
    height: int
    format: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class MediaRecord:
    id: str
    job_id: str
    source_type: str
    source_id: str
    urls: dict[str, str]
    variants: list[VariantRecord]
    blurhash: str
    width: int
    height: int
    dominant_color: str
    original_format: str
    preset: str
    preset_version: str
    created_at: datetime

    @property
    def aspect_ratio(self) -> float:
        return self.width / self.height

    @classmethod
    def from_row(cls, row: Media, url_for: UrlFor) -> MediaRecord:
        variants = [
            VariantRecord(
                name=name,
                url=url_for(info["key"]),
                width=info["width"],
                height=info["height"],
                format=info["format"],
                bytes=info["bytes"],
            )
            for name, info in row.variants.items()
        ]
        return cls(
            id=row.id,
            job_id=row.job_id,
            source_type=row.source_type,
            source_id=row.source_id,
            urls={v.name: v.url for v in variants},
            variants=variants,
            blurhash=row.blurhash,
            width=row.width,
            height=row.height,
            dominant_color=row.dominant_color,
            original_format=row.original_format,
            preset=row.preset,
            preset_version=row.preset_version,
            created_at=row.created_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "jobId": self.job_id,
            "sourceType": self.source_type,
            "sourceId": self.source_id,
            "urls": self.urls,
            "variants": [v.to_json() for v in self.variants],
            "blurhash": self.blurhash,
            "width": self.width,
            "height": self.height,
            "aspectRatio": round(self.aspect_ratio, 6),
            "dominantColor": self.dominant_color,
            "originalFormat": self.original_format,
            "preset": self.preset,
            "presetVersion": self.preset_version,
            "createdAt": iso(self.created_at),
        }


@dataclass(frozen=True)
class MediaQueueRecord:
    id: str
    status: Status
    source_type: str
    source_id: str
    attempts: int
    error: str | None
    error_code: str | None
    media: MediaRecord | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: MediaQueue, url_for: UrlFor) -> MediaQueueRecord:
        media = row.media if row.status is Status.COMPLETE else None
        return cls(
            id=row.id,
            status=row.status,
            source_type=row.source_type,
            source_id=row.source_id,
            attempts=row.attempts,
            error=row.error,
            error_code=row.error_code,
            media=MediaRecord.from_row(media, url_for) if media else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "jobId": self.id,
            "status": self.status.value,
            "sourceType": self.source_type,
            "sourceId": self.source_id,
            "attempts": self.attempts,
            "error": self.error,
            "errorCode": self.error_code,
            "media": self.media.to_json() if self.media else None,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, the form JavaScript's ``Date`` parses."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
