"""Step 8: encode every variant as WebP, in parallel, without any metadata.

Pillow releases the GIL while libwebp works, so threads use every core. The
output is sRGB and carries no EXIF, XMP or ICC chunk: whatever the original
held (GPS position, camera serial, thumbnails) is gone.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

from PIL import Image

from app.imaging.context import Output, RenderContext
from app.imaging.types import RenderedVariant

WEBP_METHOD = 3
"""libwebp effort, 0 (fastest) to 6; see bench/engine.py for the trade-off."""

CONTENT_TYPES = {"webp": "image/webp"}


def variant_content_type(fmt: str) -> str:
    """The media type of a variant in format ``fmt``, e.g. ``image/webp``."""
    try:
        return CONTENT_TYPES[fmt.lower()]
    except KeyError:
        raise ValueError(f"Variants are never encoded as {fmt!r}.") from None


def start_encoding(ctx: RenderContext) -> None:
    """Queue one encoding job per distinct output, largest first."""
    workers = min(len(ctx.outputs), os.cpu_count() or 1)
    ctx.encoder = ThreadPoolExecutor(workers, thread_name_prefix="webp")
    jobs: dict[int, int] = {}
    for output in sorted(ctx.outputs, key=_pixels, reverse=True):
        key = id(output.frames[0])
        if key not in jobs:
            jobs[key] = len(ctx.pending)
            ctx.pending.append(
                ctx.encoder.submit(_encode, output.frames, ctx.durations, ctx)
            )
    ctx.encoded_index = [jobs[id(output.frames[0])] for output in ctx.outputs]


def finish_encoding(ctx: RenderContext) -> None:
    """Wait for the encoders and fill ``ctx.variants`` in the preset's order."""
    results = [future.result() for future in ctx.pending]
    stop_encoder(ctx)
    ctx.variants = [
        _variant(output, results[index])
        for output, index in zip(ctx.outputs, ctx.encoded_index, strict=True)
    ]


def stop_encoder(ctx: RenderContext) -> None:
    if ctx.encoder is not None:
        ctx.encoder.shutdown(wait=True, cancel_futures=True)
        ctx.encoder = None


def _encode(
    frames: list[Image.Image], durations: list[int], ctx: RenderContext
) -> bytes:
    buffer = BytesIO()
    first = frames[0]
    options: dict[str, object] = {
        "quality": ctx.preset.quality,
        "method": WEBP_METHOD,
        "exif": b"",
        "xmp": b"",
    }
    if len(frames) > 1:
        options.update(
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=ctx.loop,
        )
    first.save(buffer, "WEBP", **options)
    return buffer.getvalue()


def _variant(output: Output, data: bytes) -> RenderedVariant:
    width, height = output.size
    return RenderedVariant(
        name=output.spec.name,
        width=width,
        height=height,
        format="webp",
        content_type=CONTENT_TYPES["webp"],
        data=data,
    )


def _pixels(output: Output) -> int:
    width, height = output.size
    return width * height
