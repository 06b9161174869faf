"""Step 1: read the input's bytes, refusing empty and oversized files early."""

from __future__ import annotations

import os
from typing import BinaryIO

from app.errors import ImageRejected
from app.imaging.context import RenderContext, Source


def read_source(ctx: RenderContext) -> None:
    """Fill ``ctx.data`` without ever reading more than the byte limit allows."""
    limit = ctx.limits.max_bytes
    data = _read(ctx.source, limit)
    if not data:
        raise ImageRejected("The file is empty.", code="empty_file")
    if len(data) > limit:
        known = isinstance(ctx.source, bytes | bytearray | memoryview)
        raise _too_large(len(data) if known else None, limit)
    ctx.data = data


def _read(source: Source, limit: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        return _read_path(os.fspath(source), limit)
    return _read_stream(source, limit)


def _read_path(path: str, limit: int) -> bytes:
    size = os.stat(path).st_size
    if size > limit:
        raise _too_large(size, limit)
    with open(path, "rb") as stream:
        return _read_stream(stream, limit)


def _read_stream(stream: BinaryIO, limit: int) -> bytes:
    """Read one byte past the limit, so that an oversized stream shows itself."""
    return stream.read(limit + 1)


def _too_large(size: int | None, limit: int) -> ImageRejected:
    if size is None:
        message = f"The file is larger than the limit of {_megabytes(limit)}."
    else:
        message = f"The file is {_megabytes(size)}; the limit is {_megabytes(limit)}."
    return ImageRejected(message, code="file_too_large")


def _megabytes(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count} bytes"
    return f"{round(count / (1024 * 1024), 1):g} MB"
