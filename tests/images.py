"""Images the tests make for themselves."""

from __future__ import annotations

import io

from PIL import Image


def image_bytes(
    size: tuple[int, int] = (640, 480),
    fmt: str = "JPEG",
    mode: str = "RGB",
    color: object = (200, 40, 40),
    **save: object,
) -> bytes:
    """A small generated image: a colour field with a darker bar for shape."""
    image = Image.new(mode, size, color)  # type: ignore[arg-type]
    if mode in ("RGB", "RGBA"):
        bar = (20, 20, 120) if mode == "RGB" else (20, 20, 120, 255)
        image.paste(bar, (0, 0, max(1, size[0] // 4), size[1]))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()
