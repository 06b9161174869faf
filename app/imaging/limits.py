"""Step 3: judge the declared size and frame count before any pixel is decoded."""

from __future__ import annotations

from PIL import ImageFile

from app.errors import ImageRejected
from app.imaging.context import RenderContext
from app.imaging.errors import rejecting_bad_data
from app.imaging.types import Limits

ANIMATED_FORMATS = frozenset({"gif", "webp", "png", "avif"})
"""Formats whose extra frames are an animation; other formats render frame 0."""


def check_limits(ctx: RenderContext) -> None:
    """Refuse sizes outside ``ctx.limits`` and decide how many frames to render."""
    width, height = ctx.stored_size
    check_size(width, height, ctx.limits)
    if ctx.preset.animated and ctx.format in ANIMATED_FORMATS:
        ctx.frame_count = _frame_count(ctx.opened, ctx.format)
        _check_frames(width * height, ctx.frame_count, ctx.limits)


def check_size(width: int, height: int, limits: Limits) -> None:
    """Refuse one frame of ``width`` x ``height`` that the limits do not allow."""
    if min(width, height) < max(limits.min_dimension, 1):
        raise ImageRejected(
            f"The image is {width}x{height} pixels; each side must be at least "
            f"{max(limits.min_dimension, 1)} pixels.",
            code="too_small",
        )
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"The image is {width}x{height}, {_megapixels(width * height)} "
            f"megapixels; the limit is {_megapixels(limits.max_pixels)}.",
            code="too_many_pixels",
        )
    if max(width, height) > limits.max_dimension:
        raise ImageRejected(
            f"The image is {width}x{height} pixels; no side may be longer than "
            f"{limits.max_dimension} pixels.",
            code="too_many_pixels",
        )


def _frame_count(image: ImageFile.ImageFile, format_name: str) -> int:
    """Count frames by walking the headers; GIF frames are skipped, not decoded."""
    with rejecting_bad_data(format_name):
        return int(getattr(image, "n_frames", 1))


def _check_frames(frame_pixels: int, frames: int, limits: Limits) -> None:
    if frames > limits.max_frames:
        raise ImageRejected(
            f"The animation has {frames} frames; the limit is {limits.max_frames}.",
            code="too_many_frames",
        )
    if frame_pixels * frames > limits.max_pixels:
        raise ImageRejected(
            f"The animation is {_megapixels(frame_pixels * frames)} megapixels over "
            f"its {frames} frames; the limit is {_megapixels(limits.max_pixels)}.",
            code="too_many_pixels",
        )


def _megapixels(pixels: int) -> str:
    value = pixels / 1_000_000
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"
