"""PNG chunk integrity, which Pillow does not verify for image data."""

from __future__ import annotations

import struct
import zlib

from app.errors import ImageRejected

_SIGNATURE_LENGTH = 8


def verify_png_chunks(data: bytes) -> None:
    """Refuse a PNG whose critical chunks are cut short or fail their CRC.

    Critical chunks (IHDR, PLTE, IDAT, IEND) are the ones whose type starts
    with a capital letter; like libpng, damage in ancillary chunks is ignored.
    Bytes after IEND are ignored too.
    """
    offset = _SIGNATURE_LENGTH
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            raise _corrupt(f"its {_name(kind)} chunk is cut short")
        if kind[:1].isupper() and not _crc_matches(data, offset + 4, end):
            raise _corrupt(f"its {_name(kind)} chunk fails its checksum")
        if kind == b"IEND":
            return
        offset = end + 4
    raise _corrupt("it ends before its IEND chunk")


def _crc_matches(data: bytes, start: int, end: int) -> bool:
    stored = int.from_bytes(data[end : end + 4], "big")
    return zlib.crc32(memoryview(data)[start:end]) == stored


def _name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isalpha() else repr(kind)


def _corrupt(reason: str) -> ImageRejected:
    return ImageRejected(f"The PNG image is damaged: {reason}.", code="corrupt_image")
