"""Cover crops land on the detailed part of the image, not blindly in the middle."""

from __future__ import annotations

import pytest
from PIL import Image

from app.imaging import render
from app.imaging.crop import attention_box, focus_box
from app.presets import Preset, VariantSpec

from .factories import decoded, encoded

SQUARE = Preset(name="square", variants=(VariantSpec("s", 100),), fit="cover")


def _busy_patch_at(
    size: tuple[int, int], box: tuple[int, int, int, int]
) -> Image.Image:
    image = Image.new("RGB", size, (120, 150, 170))
    noise = Image.effect_noise((box[2] - box[0], box[3] - box[1]), 90).convert("RGB")
    image.paste(noise, box[:2])
    return image


@pytest.mark.parametrize(
    ("size", "patch", "expected_box"),
    [
        ((600, 200), (10, 40, 130, 160), (0, 0, 200, 200)),
        ((600, 200), (470, 40, 590, 160), (400, 0, 600, 200)),
        ((200, 600), (40, 420, 160, 560), (0, 380, 200, 580)),
    ],
)
def test_attention_box_follows_the_detail(
    size: tuple[int, int],
    patch: tuple[int, int, int, int],
    expected_box: tuple[int, int, int, int],
) -> None:
    box = attention_box(_busy_patch_at(size, patch))
    assert box[2] - box[0] == box[3] - box[1] == 200
    assert all(abs(a - b) <= 25 for a, b in zip(box, expected_box, strict=True))


def test_attention_box_centres_a_flat_image() -> None:
    assert attention_box(Image.new("RGB", (900, 300), "white")) == (300, 0, 600, 300)


def test_render_avatar_crop_contains_the_subject() -> None:
    image = _busy_patch_at((900, 300), (20, 60, 220, 240))
    output = decoded(render(encoded(image, "PNG"), SQUARE).variants[0].data)
    left_half = output.crop((0, 0, 50, 100)).convert("L")
    low, high = left_half.getextrema()
    assert isinstance(low, int) and isinstance(high, int)
    assert high - low > 60


@pytest.mark.parametrize(
    ("size", "focus", "box"),
    [
        ((400, 100), (0.5, 0.5), (150, 0, 250, 100)),
        ((400, 100), (0.0, 0.5), (0, 0, 100, 100)),
        ((400, 100), (0.99, 0.1), (300, 0, 400, 100)),
        ((100, 300), (0.5, 0.2), (0, 10, 100, 110)),
        ((100, 100), (0.9, 0.9), (0, 0, 100, 100)),
    ],
)
def test_focus_box_centres_the_square_on_the_focal_point_within_the_image(
    size: tuple[int, int],
    focus: tuple[float, float],
    box: tuple[int, int, int, int],
) -> None:
    assert focus_box(size, focus) == box
