"""Step 4: decode the pixels fully and strictly, at no more than the size needed.

A JPEG is decoded with DCT scaling (``draft``) straight to the smallest power
of two reduction that still covers the largest variant. Truncated or damaged
data is refused instead of being rendered half grey.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from app.imaging.context import RenderContext
from app.imaging.errors import rejecting_bad_data
from app.imaging.orient import SWAPS_SIDES, read_orientation
from app.imaging.plan import needed_size
from app.imaging.png import verify_png_chunks

MIN_FRAME_DURATION_MS = 20
"""Shorter frame times are shown as 100 ms by browsers, so they become 100 ms."""
MAX_FRAME_DURATION_MS = 60_000
"""Longer frame times are cut to a minute, keeping the WebP timeline in range."""
SHRINK_GAP = 2.0
"""How many times the needed size a box-reduced frame stays, at least."""
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK"})
MAX_LOOP = 65_535
"""The largest loop count a WebP animation can hold; 0 loops forever."""


def decode(ctx: RenderContext) -> None:
    """Fill ``ctx.frames`` (and durations, loop, ICC profile) from the input."""
    image = ctx.opened
    if ctx.format == "png":
        verify_png_chunks(ctx.data)
    with rejecting_bad_data(ctx.format):
        if ctx.format == "jpeg":
            _draft(image, ctx)
        if ctx.animated:
            _load_animation(image, ctx)
        else:
            image.load()
            ctx.frames = [_plain_cmyk_fixed(image, ctx.format)]
        ctx.orientation = read_orientation(image)
    ctx.width, ctx.height = _upright(ctx.stored_size, ctx.orientation)
    if not ctx.animated:
        ctx.frames = [_shrunk(ctx.first_frame, ctx)]
    profile = image.info.get("icc_profile")
    ctx.icc_profile = profile if isinstance(profile, bytes) and profile else None
    loop = image.info.get("loop", 0)
    ctx.loop = min(max(loop, 0), MAX_LOOP) if isinstance(loop, int) else 0


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """``size`` seen upright: sides swap for the quarter-turn orientations."""
    width, height = size
    return (height, width) if orientation in SWAPS_SIDES else (width, height)


def _draft(image: ImageFile.ImageFile, ctx: RenderContext) -> None:
    """Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding, as far as allowed.

    Read before any pixel is decoded, the orientation is only needed to know
    which stored side becomes the upright width.
    """
    orientation = read_orientation(image)
    width, height = _upright(ctx.stored_size, orientation)
    needed = needed_size(ctx.preset, width, height)
    image.draft(None, _upright(needed, orientation))


def _shrunk(frame: Image.Image, ctx: RenderContext) -> Image.Image:
    """Box-reduce a frame far larger than needed, as a JPEG draft would.

    A gap of :data:`SHRINK_GAP` is kept above the needed size so that the
    final Lanczos pass still has detail to work with. A JPEG, already drafted,
    is never reduced again.
    """
    needed = _upright(needed_size(ctx.preset, ctx.width, ctx.height), ctx.orientation)
    ratio = min(frame.width / needed[0], frame.height / needed[1])
    factor = int(ratio / SHRINK_GAP)
    if factor < 2 or frame.mode not in _REDUCIBLE_MODES:
        return frame
    return frame.reduce(factor)


def _plain_cmyk_fixed(image: Image.Image, format_name: str) -> Image.Image:
    """Undo Pillow's inversion of a CMYK JPEG that lacks Adobe's marker.

    Photoshop stores CMYK JPEGs inverted and says so in an APP14 "Adobe"
    segment; Pillow assumes that convention for every CMYK JPEG, which turns
    the rarer plain ones into negatives.
    """
    if format_name != "jpeg" or image.mode != "CMYK" or "adobe" in image.info:
        return image
    return image.point(lambda value: 255 - value)


def _load_animation(image: ImageFile.ImageFile, ctx: RenderContext) -> None:
    """Decode every frame, composed onto the canvas, as RGBA of one size."""
    box = (0, 0, *ctx.stored_size)
    frames: list[Image.Image] = []
    durations: list[int] = []
    for index in range(ctx.frame_count):
        image.seek(index)
        image.load()
        frame = image.convert("RGBA")
        frames.append(frame if frame.size == ctx.stored_size else frame.crop(box))
        durations.append(_duration(image.info.get("duration")))
    ctx.frames, ctx.durations = frames, durations


def _duration(value: object) -> int:
    if not isinstance(value, int | float) or value < MIN_FRAME_DURATION_MS:
        return 100
    return int(min(value, MAX_FRAME_DURATION_MS))
