"""Content sniffing: what the first bytes of a file say it is.

The file name and the declared content type never matter; only these bytes do.
"""

from __future__ import annotations

SNIFF_BYTES = 64
"""How many leading bytes :func:`sniff` looks at."""

PILLOW_FORMATS: dict[str, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "heif": "HEIF",
    "avif": "AVIF",
    "tiff": "TIFF",
}
"""Sniffed name to the name of the Pillow plugin that opens it."""

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
    | {b"mif1", b"mif2", b"msf1"}
)

_REFUSED: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"%!PS", "a PostScript file"),
    (b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"SIMPLE  =", "a FITS file"),
    (b"DDS ", "a DDS texture"),
)


def sniff(head: bytes) -> str | None:
    """Name the allowed image format that ``head`` starts, or ``None``.

    ``head`` is the start of the file; :data:`SNIFF_BYTES` bytes are enough.
    The answer is lower case: ``jpeg``, ``png``, ``webp``, ``gif``, ``heif``,
    ``avif`` or ``tiff``.
    """
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return _sniff_iso_media(head)


def describe(head: bytes) -> str:
    """Say in words what a refused file looks like, for a rejection message."""
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "markup (SVG, HTML or XML), not an image"
    for magic, words in _REFUSED:
        if head.startswith(magic):
            return words
    return "not an image in a format the service reads"


def _sniff_iso_media(head: bytes) -> str | None:
    """HEIF and AVIF: an ISO media ``ftyp`` box whose brands name the codec."""
    if head[4:8] != b"ftyp":
        return None
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]}
    brands.update(head[i : i + 4] for i in range(16, box_end - 3, 4))
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heif"
    return None
