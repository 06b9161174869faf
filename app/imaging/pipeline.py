"""The render pipeline: an ordered list of small steps over one context.

Each step reads what earlier steps left in :class:`RenderContext` and adds
its own part. Bad input stops the pipeline with ``ImageRejected``.
"""

from __future__ import annotations

from collections.abc import Callable

from app.imaging.colour import convert_colour
from app.imaging.context import RenderContext, Source
from app.imaging.decode import decode
from app.imaging.encode import finish_encoding, start_encoding, stop_encoder
from app.imaging.limits import check_limits
from app.imaging.load import open_image
from app.imaging.orient import orient
from app.imaging.placeholder import compute_placeholder
from app.imaging.resize import render_variants
from app.imaging.source import read_source
from app.imaging.types import Limits, Rendered
from app.presets import Preset

Step = Callable[[RenderContext], None]

STEPS: tuple[Step, ...] = (
    read_source,  # 1. bytes in, size limit, nothing empty
    open_image,  # 2. sniffed format, allow-listed plugin, header only
    check_limits,  # 3. pixels, sides and frames, before decoding
    decode,  # 4. strict decode, JPEG scaled down while decoding
    orient,  # 5. EXIF orientation
    convert_colour,  # 6. ICC profiles and odd modes to sRGB
    render_variants,  # 7. scale or attention-crop each variant
    start_encoding,  # 8. WebP encoders start on worker threads ...
    compute_placeholder,  # 9. ... while the BlurHash is computed here
    finish_encoding,  # 8. ... and their results are collected
)


def render(source: Source, preset: Preset, limits: Limits | None = None) -> Rendered:
    """Turn an uploaded image into upright sRGB WebP variants and a placeholder.

    ``source`` is the image's bytes, a path or a binary stream. Bad input of
    any kind raises :class:`app.errors.ImageRejected` with a stable ``code``.
    """
    ctx = RenderContext(source=source, preset=preset, limits=limits or Limits())
    try:
        for step in STEPS:
            step(ctx)
    finally:
        stop_encoder(ctx)
        if ctx.image is not None:
            ctx.image.close()
    return Rendered(
        width=ctx.width,
        height=ctx.height,
        original_format=ctx.format,
        blurhash=ctx.blurhash,
        dominant_color=ctx.dominant_color,
        variants=tuple(ctx.variants),
        animated=ctx.animated,
    )
