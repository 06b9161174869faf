"""Step 5: turn the pixels upright according to the EXIF orientation tag."""

from __future__ import annotations

from PIL import ExifTags, Image

from app.imaging.context import RenderContext
from app.imaging.errors import DECODER_ERRORS

_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""Orientation tag value to the transpose that makes the image upright."""

SWAPS_SIDES = frozenset({5, 6, 7, 8})
"""Orientations whose upright image is the stored one turned a quarter."""


def read_orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 when it is missing, malformed or out of range.

    HEIF images come upright from pillow-heif, which also resets the tag to 1,
    so they are never turned twice.
    """
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except DECODER_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(ctx: RenderContext) -> None:
    """Apply ``ctx.orientation`` to every frame."""
    transpose = _TRANSPOSE.get(ctx.orientation)
    if transpose is None:
        return
    ctx.frames = [frame.transpose(transpose) for frame in ctx.frames]
    ctx.orientation = 1
