"""Step 9: a BlurHash and a dominant colour, both from a tiny thumbnail.

The thumbnail is at most 64 pixels on its longer side, so the cost does not
grow with the input. Transparent areas are laid over white, as a page would
show them.
"""

from __future__ import annotations

import warnings

import blurhash
from PIL import Image

from app.imaging.context import RenderContext

THUMBNAIL_SIDE = 64
PALETTE_COLOURS = 8


def compute_placeholder(ctx: RenderContext) -> None:
    """Set ``ctx.blurhash`` and ``ctx.dominant_color`` from the first frame."""
    thumbnail = _flattened(_thumbnail(ctx.first_frame))
    ctx.dominant_color = _dominant_colour(thumbnail)
    ctx.blurhash = _blurhash(thumbnail)


def _thumbnail(frame: Image.Image) -> Image.Image:
    width, height = frame.size
    scale = THUMBNAIL_SIDE / max(width, height)
    if scale >= 1:
        return frame.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return frame.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def _flattened(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB")
    white = Image.new("RGB", image.size, (255, 255, 255))
    white.paste(image, mask=image.getchannel("A"))
    return white


def _blurhash(thumbnail: Image.Image) -> str:
    """Four by three components, turned for portrait images."""
    width, height = thumbnail.size
    x_components, y_components = (4, 3) if width >= height else (3, 4)
    with warnings.catch_warnings():
        # blurhash-python reads pixels with Image.getdata, deprecated in Pillow 12.
        warnings.filterwarnings(
            "ignore", message=r"Image\.Image\.getdata", category=DeprecationWarning
        )
        return str(blurhash.encode(thumbnail, x_components, y_components))


def _dominant_colour(thumbnail: Image.Image) -> str:
    """The colour of the largest cluster in an eight-colour palette."""
    palette_image = thumbnail.quantize(PALETTE_COLOURS, Image.Quantize.MEDIANCUT)
    counts = palette_image.getcolors(PALETTE_COLOURS) or [(1, 0)]
    _, index = max(counts)
    palette = palette_image.getpalette() or [255, 255, 255]
    start = int(index) * 3 if isinstance(index, int) else 0
    red, green, blue = palette[start : start + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"
