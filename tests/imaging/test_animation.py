"""Animations stay animated in WebP when the preset wants it, else frame 0."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.imaging import render
from app.presets import Preset

from .factories import AVATAR, DEFAULT, STILL, encoded

COLOURS = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 220, 30)]


def _frames(mode: str = "RGB") -> list[Image.Image]:
    return [Image.new(mode, (200, 120), colour) for colour in COLOURS]


def _animation(fmt: str) -> bytes:
    first, *rest = _frames("RGBA" if fmt == "WEBP" else "RGB")
    return encoded(first, fmt, save_all=True, append_images=rest, duration=80, loop=0)


def _frame_colours(data: bytes) -> list[tuple[int, ...]]:
    image = Image.open(io.BytesIO(data))
    colours = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        pixel = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
        assert isinstance(pixel, tuple)
        colours.append(pixel)
    return colours


def _near(first: tuple[int, ...], second: tuple[int, ...]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_render_keeps_animation_frames_in_order(fmt: str) -> None:
    rendered = render(_animation(fmt), DEFAULT)
    assert rendered.animated
    for variant in rendered.variants:
        colours = _frame_colours(variant.data)
        assert len(colours) == len(COLOURS)
        assert all(map(_near, colours, COLOURS))


def test_render_keeps_frame_durations() -> None:
    rendered = render(_animation("GIF"), DEFAULT)
    image = Image.open(io.BytesIO(rendered.variants[0].data))
    image.seek(1)
    image.load()
    assert image.info["duration"] == 80


@pytest.mark.parametrize("preset", [STILL, AVATAR])
@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_render_takes_the_first_frame_when_the_preset_is_still(
    fmt: str, preset: Preset
) -> None:
    rendered = render(_animation(fmt), preset)
    assert not rendered.animated
    for variant in rendered.variants:
        colours = _frame_colours(variant.data)
        assert len(colours) == 1
        assert _near(colours[0], COLOURS[0])


def test_render_crops_every_frame_of_an_animated_cover_alike() -> None:
    preset = Preset(name="moving-avatar", variants=AVATAR.variants, fit="cover")
    rendered = render(_animation("GIF"), preset)
    assert rendered.animated
    assert [(v.width, v.height) for v in rendered.variants][-1] == (120, 120)
    assert len(_frame_colours(rendered.variants[-1].data)) == len(COLOURS)
