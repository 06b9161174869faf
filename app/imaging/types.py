"""The engine's inputs and outputs: plain data shared by workers and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

ALLOWED_FORMATS: frozenset[str] = frozenset(
    {"JPEG", "PNG", "WEBP", "GIF", "HEIF", "AVIF", "TIFF"}
)
"""Pillow format names the engine will open; every other format is refused."""


@dataclass(frozen=True)
class Limits:
    """What the engine accepts; everything outside is ``ImageRejected``."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    """Counted over all frames of an animation."""
    min_dimension: int = 1
    max_dimension: int = 30_000
    """Longest side in pixels; a 65000x10 strip is refused before decoding."""
    max_frames: int = 100
    allowed_formats: frozenset[str] = ALLOWED_FORMATS


@dataclass(frozen=True)
class RenderedVariant:
    name: str
    width: int
    height: int
    format: str
    """Lower-case file format, e.g. ``"webp"``."""
    content_type: str
    data: bytes = field(repr=False)

    @property
    def bytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Rendered:
    """Everything the engine made from one input."""

    width: int
    """Width of the upright original."""
    height: int
    original_format: str
    """Lower-case format of the input, e.g. ``"jpeg"``, ``"heif"``."""
    blurhash: str
    dominant_color: str
    """``#rrggbb`` in sRGB."""
    variants: tuple[RenderedVariant, ...]
    animated: bool = False

    @property
    def aspect_ratio(self) -> float:
        return self.width / self.height
