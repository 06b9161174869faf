"""Output sizes: what each variant measures, and how much of the image they need."""

from __future__ import annotations

import math

from app.presets import Fit, Preset, VariantSpec

MAX_OUTPUT_SIDE = 16383
"""The longest side WebP can store."""


def variant_size(
    spec: VariantSpec, width: int, height: int, fit: Fit
) -> tuple[int, int]:
    """The exact size of one variant of an upright ``width`` x ``height`` image.

    Nothing is upscaled: a variant wider than the image gets the image's width,
    and a square crop is never larger than the image's shorter side. A very
    tall image is scaled further so that its height fits in a WebP file.
    """
    if fit == "cover":
        side = min(spec.width, width, height, MAX_OUTPUT_SIDE)
        return side, side
    scale = min(spec.width, width) / width
    scale = min(scale, MAX_OUTPUT_SIDE / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def needed_size(preset: Preset, width: int, height: int) -> tuple[int, int]:
    """The smallest whole image from which every variant can still be cut."""
    largest = preset.largest_width
    if preset.fit == "cover":
        scale = min(largest, width, height) / min(width, height)
    else:
        scale = min(min(largest, width) / width, MAX_OUTPUT_SIDE / height)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))
