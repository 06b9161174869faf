"""Step 2: identify the format from the bytes and open the header with Pillow.

Only the plugin for the sniffed format may open the file, so a PostScript
file dressed as a PNG never reaches Ghostscript and an SVG is never parsed.
Opening reads the header only; no pixels are decoded here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from app.errors import ImageRejected
from app.imaging.context import RenderContext
from app.imaging.errors import rejecting_bad_data
from app.imaging.sniff import PILLOW_FORMATS, SNIFF_BYTES, describe, sniff

pillow_heif.register_heif_opener()
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow logs every EXIF and TIFF tag's value at DEBUG: what an upload holds
# (GPS positions, names, planted text) must not reach the logs at any level.
logging.getLogger("PIL").setLevel(logging.INFO)

_OPEN_LOCK = threading.Lock()


def open_image(ctx: RenderContext) -> None:
    """Set ``ctx.format``, ``ctx.image`` and ``ctx.stored_size`` from the header."""
    name = _allowed_format(ctx)
    ctx.format = name
    with rejecting_bad_data(name):
        image = _open(ctx.data, PILLOW_FORMATS[name])
    ctx.image = image
    ctx.stored_size = image.size


def _allowed_format(ctx: RenderContext) -> str:
    head = ctx.data[:SNIFF_BYTES]
    name = sniff(head)
    accepted = sorted(ctx.limits.allowed_formats)
    if name is None:
        raise ImageRejected(
            f"The file is {describe(head)}; accepted formats are "
            f"{', '.join(accepted)}.",
            code="unsupported_format",
        )
    if PILLOW_FORMATS[name] not in ctx.limits.allowed_formats:
        raise ImageRejected(
            f"The file is a {name.upper()} image; accepted formats are "
            f"{', '.join(accepted)}.",
            code="unsupported_format",
        )
    return name


def _open(data: bytes, pillow_format: str) -> ImageFile.ImageFile:
    try:
        with _size_checked_by_engine():
            image = Image.open(BytesIO(data), formats=[pillow_format])
    except UnidentifiedImageError:
        if pillow_format == "PNG" and _png_has_zero_side(data):
            raise ImageRejected(
                "The image's header gives it a side of 0 pixels.", code="too_small"
            ) from None
        raise
    return image


@contextmanager
def _size_checked_by_engine() -> Iterator[None]:
    """Keep Pillow's declared-size check out of ``Image.open``.

    Pillow compares the header's size with ``MAX_IMAGE_PIXELS`` while opening
    and either warns or raises its own error before the engine could name the
    size and its configured limit; the limits step checks it instead. Pillow's
    later checks, on frames that grow the canvas or on huge TIFF tiles, stay.
    """
    with _OPEN_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _png_has_zero_side(data: bytes) -> bool:
    if data[12:16] != b"IHDR" or len(data) < 24:
        return False
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return width == 0 or height == 0
