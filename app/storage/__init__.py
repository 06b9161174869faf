"""Where originals and variants live, behind one small interface.

Two backends implement :class:`Storage`: :class:`LocalStorage`
(``file:///path``) and :class:`app.storage.s3.S3Storage` (``s3://bucket/prefix``:
AWS S3, Cloudflare R2, MinIO and other S3-compatible stores). The same job and preset
always give the same keys (see :mod:`app.storage.keys`), so a re-run
overwrites rather than leaks. Backend failures surface as
:class:`app.errors.StorageError`; a key the service could not have made
raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol
from urllib.parse import unquote, urlparse

from app.storage.keys import (
    cache_control,
    is_public,
    is_valid_key,
    original_key,
    variant_key,
)
from app.storage.local import LocalStorage, Stored
from app.storage.options import StorageOptions


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key in the folder ``prefix`` and below; all keys when empty."""

    def listing(self, prefix: str = "") -> Iterator[Stored]:
        """Like :meth:`keys`, with each object's last modification time."""

    def check(self) -> None:
        """Raise ``StorageError`` unless the store can be reached now."""


def open_storage(url: str, options: StorageOptions | None = None) -> Storage:
    """The backend named by a ``STORAGE_URL``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(unquote(parsed.path))
    if parsed.scheme == "s3":
        # boto3 takes a while to import: only deployments on S3 pay for it.
        from app.storage.s3 import S3Storage

        return S3Storage.from_url(url, options or StorageOptions())
    raise ValueError(f"STORAGE_URL scheme {parsed.scheme!r} is not supported.")


__all__ = [
    "LocalStorage",
    "Storage",
    "StorageOptions",
    "Stored",
    "cache_control",
    "is_public",
    "is_valid_key",
    "open_storage",
    "original_key",
    "variant_key",
]
