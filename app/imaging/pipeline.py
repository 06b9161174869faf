"""The render pipeline: an ordered list of small steps over one context.

Each step reads what earlier steps left in :class:`RenderContext` and adds
its own part. Bad input stops the pipeline with ``ImageRejected``.
"""

from __future__ import annotations

from collections.abc import Callable

from app.imaging.colour import convert_colour
from app.imaging.context import RenderContext, Source
from app.imaging.decode import decode
from app.imaging.encode import finish_encoding, start_encoder, stop_encoder
from app.imaging.errors import too_large_to_decode
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
    read_source,  # bytes in; nothing empty, nothing over the byte limit
    open_image,  # sniffed format, allow-listed Pillow plugin, header only
    check_limits,  # pixels, sides and frames, all before decoding
    decode,  # strict decode; a JPEG is scaled down while it decodes
    orient,  # EXIF orientation
    convert_colour,  # ICC profiles and unusual modes to 8-bit sRGB
    start_encoder,  # WebP encoder threads, fed by the next step
    render_variants,  # scale or attention-crop each size, queue it for encoding
    compute_placeholder,  # BlurHash and dominant colour, while encoders work
    finish_encoding,  # collect the WebP bytes in the preset's order
)


def render(
    source: Source,
    preset: Preset,
    limits: Limits | None = None,
    focus: tuple[float, float] | None = None,
) -> Rendered:
    """Turn an uploaded image into upright sRGB WebP variants and a placeholder.

    ``source`` is the image's bytes, a path or a binary stream. Bad input of
    any kind raises :class:`app.errors.ImageRejected` with a stable ``code``;
    running out of memory is ``too_large_to_decode``.
    ``focus`` (x, y as shares of the upright image) places square crops
    around that point instead of the most detailed region.
    """
    ctx = RenderContext(
        source=source, preset=preset, limits=limits or Limits(), focus=focus
    )
    try:
        for step in STEPS:
            step(ctx)
    except MemoryError as exc:
        # Scaling or encoding can run out of memory as well as decoding.
        raise too_large_to_decode(ctx.format) from exc
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
