"""Which queue a job goes to: heavy originals get workers of their own.

A worker busy with a 40 MB panorama or a 100-frame GIF should not hold up
the avatars queued behind it. Jobs whose original is larger than
``IMAGE_PIPELINE_HEAVY_BYTES``, and animations, go to the heavy queue; run
workers for it with ``image-pipeline worker --queues image-pipeline-heavy``.
Animation is read from the header alone, at upload, and stored on the job.
"""

from __future__ import annotations

HEADER_SCAN = 64 * 1024
"""How far into a GIF or PNG the animation markers are looked for."""

_ISO_SEQUENCE_BRANDS = (b"avis", b"msf1", b"hevs")


def is_heavy(original_bytes: int, animated: bool, threshold: int) -> bool:
    """True when a job belongs on the heavy queue; a threshold of 0 turns it off."""
    return threshold > 0 and (animated or original_bytes > threshold)


def looks_animated(data: bytes) -> bool:
    """Whether an image's header announces more than one frame.

    GIF: a looping (NETSCAPE2.0) extension; PNG: an ``acTL`` chunk before the
    first ``IDAT``; WebP: the VP8X animation flag; HEIF and AVIF: an image
    sequence brand. A GIF that does not loop counts as still: the cost of
    a wrong guess is only which queue renders it.
    """
    head = data[:HEADER_SCAN]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return b"NETSCAPE2.0" in head
    if head.startswith(b"\x89PNG"):
        first_data = head.find(b"IDAT")
        return b"acTL" in (head[:first_data] if first_data >= 0 else head)
    if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X":
        return len(head) > 20 and bool(head[20] & 0x02)
    if head[4:8] == b"ftyp":
        return any(brand in head[8:64] for brand in _ISO_SEQUENCE_BRANDS)
    return False
