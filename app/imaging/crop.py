"""Square crops for ``fit="cover"``, placed over the busiest part of the image.

The window slides along the longer side of a small greyscale edge map and
stops where the most detail is; a mild pull towards the centre settles ties,
so a flat image is cropped in the middle.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

from app.imaging.context import RenderContext

ANALYSIS_LENGTH = 256
"""Cells along the longer side of the edge map; finer steps gain nothing."""
CENTRE_PULL = 0.15
"""Share of a window's score lost when it sits at the very edge."""


def crop_square(ctx: RenderContext) -> list[Image.Image]:
    """Every frame cropped to the same square, as large as the shorter side."""
    first = ctx.first_frame
    box = focus_box(first.size, ctx.focus) if ctx.focus else attention_box(first)
    return [frame.crop(box) for frame in ctx.frames]


def focus_box(
    size: tuple[int, int], focus: tuple[float, float]
) -> tuple[int, int, int, int]:
    """The largest square centred as near ``focus`` as the edges allow."""
    width, height = size
    side = min(width, height)
    left = _clamp(round(focus[0] * width - side / 2), width - side)
    top = _clamp(round(focus[1] * height - side / 2), height - side)
    return left, top, left + side, top + side


def _clamp(value: int, most: int) -> int:
    return max(0, min(value, most))


def attention_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The square of side ``min(image.size)`` holding the most detail."""
    width, height = image.size
    side = min(width, height)
    travel = max(width, height) - side
    if travel == 0:
        return 0, 0, side, side
    offset = round(
        _best_start(_detail_profile(image), side / max(width, height)) * travel
    )
    if width > height:
        return offset, 0, offset + side, side
    return 0, offset, side, offset + side


def _detail_profile(image: Image.Image) -> list[int]:
    """Mean edge strength of each cell along the longer side.

    Pillow's filters copy the outermost pixels unfiltered, so that frame is
    cut off and its cells along the longer side count as having no detail.
    """
    width, height = image.size
    landscape = width >= height
    long_cells = max(3, min(ANALYSIS_LENGTH, max(width, height)))
    short_cells = max(3, round(long_cells * min(width, height) / max(width, height)))
    size = (long_cells, short_cells) if landscape else (short_cells, long_cells)
    grey = image.convert("L").resize(size, Image.Resampling.BOX)
    edges = grey.filter(ImageFilter.FIND_EDGES)
    inner = edges.crop((1, 1, size[0] - 1, size[1] - 1))
    line = (long_cells - 2, 1) if landscape else (1, long_cells - 2)
    return [0, *inner.resize(line, Image.Resampling.BOX).tobytes(), 0]


def _best_start(profile: list[int], window_share: float) -> float:
    """Where the best window starts, as a share of the room it has to move."""
    cells = len(profile)
    window = max(1, min(cells, round(cells * window_share)))
    positions = cells - window
    if positions == 0 or not any(profile):
        return 0.5
    totals = [sum(profile[:window])]
    for start in range(1, positions + 1):
        totals.append(totals[-1] - profile[start - 1] + profile[start + window - 1])
    scores = [
        total * (1 - CENTRE_PULL * abs(2 * start / positions - 1))
        for start, total in enumerate(totals)
    ]
    best = max(
        range(len(scores)),
        key=lambda start: (scores[start], -abs(2 * start - positions)),
    )
    return best / positions
