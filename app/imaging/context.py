"""The state that the render steps share, filled in as the pipeline runs."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from PIL import Image, ImageFile

from app.imaging.types import Limits, RenderedVariant
from app.presets import Preset, VariantSpec

Source = bytes | str | os.PathLike[str] | BinaryIO


@dataclass
class Output:
    """One variant: its spec, its exact size and its WebP bytes to come."""

    spec: VariantSpec
    size: tuple[int, int]
    encoded: Future[bytes]


@dataclass
class RenderContext:
    """Everything one render knows; each step reads some fields and sets others.

    Sizes named ``width`` and ``height`` are those of the upright original at
    full resolution; ``frames`` may be smaller when the decoder scaled them down
    on load (JPEG draft), but never smaller than the largest variant needs.
    """

    source: Source
    preset: Preset
    limits: Limits
    focus: tuple[float, float] | None = None
    """A focal point for square crops, as shares (0-1) of width and height."""

    data: bytes = b""
    """The input's bytes, read once, at most ``limits.max_bytes`` of them."""
    format: str = ""
    """Lower-case format name from content sniffing, e.g. ``"jpeg"``."""
    image: ImageFile.ImageFile | None = None
    """The opened, not yet decoded, input."""
    stored_size: tuple[int, int] = (0, 0)
    """Size as stored in the file, before orientation is applied."""
    frame_count: int = 1
    """Frames that will be rendered: 1 unless the output is animated."""
    orientation: int = 1
    """EXIF orientation, 1 (upright) to 8."""
    width: int = 0
    height: int = 0

    frames: list[Image.Image] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    """Display time of each frame in milliseconds (animations only)."""
    loop: int = 0
    icc_profile: bytes | None = None

    encoder: ThreadPoolExecutor | None = None
    """Threads encoding variants while the pipeline goes on."""
    outputs: list[Output] = field(default_factory=list)
    """Variants in the preset's order; equal sizes share one encoding."""
    variants: list[RenderedVariant] = field(default_factory=list)
    blurhash: str = ""
    dominant_color: str = ""

    @property
    def opened(self) -> ImageFile.ImageFile:
        """The opened input; the open step has always run before this is read."""
        if self.image is None:
            raise RuntimeError("The image is read before the open step ran.")
        return self.image

    @property
    def animated(self) -> bool:
        return self.frame_count > 1

    @property
    def first_frame(self) -> Image.Image:
        return self.frames[0]
