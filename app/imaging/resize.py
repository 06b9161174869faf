"""Step 7: scale (and for covers, crop) every variant from one decoded image.

Variants are made largest first, each from the one before, so every scale
step is small; ``reducing_gap`` lets Pillow shrink by whole factors with a
fast box filter before the final Lanczos pass.
"""

from __future__ import annotations

from concurrent.futures import Future

from PIL import Image

from app.imaging.context import Output, RenderContext
from app.imaging.crop import crop_square
from app.imaging.encode import queue_encoding
from app.imaging.plan import variant_size

REDUCING_GAP = 3.0
"""Box-reduce until within this factor of the target, then Lanczos."""


def render_variants(ctx: RenderContext) -> None:
    """Fill ``ctx.outputs``, queueing each distinct size for encoding at once."""
    preset = ctx.preset
    sizes = {
        spec.name: variant_size(spec, ctx.width, ctx.height, preset.fit)
        for spec in preset.variants
    }
    source = crop_square(ctx) if preset.fit == "cover" else ctx.frames
    encoded: dict[tuple[int, int], Future[bytes]] = {}
    for size in sorted(set(sizes.values()), reverse=True):
        source = [_scaled(frame, size) for frame in source]
        encoded[size] = queue_encoding(ctx, source)
    ctx.outputs = [
        Output(spec, sizes[spec.name], encoded[sizes[spec.name]])
        for spec in preset.variants
    ]


def _scaled(frame: Image.Image, size: tuple[int, int]) -> Image.Image:
    if frame.size == size:
        return frame
    return frame.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
