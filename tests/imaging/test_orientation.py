"""Every EXIF orientation comes out upright, for every format that carries one."""

from __future__ import annotations

import pytest
from PIL import Image

from app.imaging import render
from app.presets import Preset, VariantSpec

from .factories import asymmetric, decoded, encoded, mean_difference

# The transpose that turns an upright picture into what a camera stores
# under each orientation tag (the inverse of what a viewer applies).
STORED_AS: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
FULL_SIZE = Preset(name="full", variants=(VariantSpec("full", 4000),))
UPRIGHT = asymmetric((240, 160))


def _stored(orientation: int, fmt: str) -> bytes:
    transpose = STORED_AS[orientation]
    pixels = UPRIGHT if transpose is None else UPRIGHT.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(pixels, fmt, exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_render_turns_every_orientation_upright(orientation: int, fmt: str) -> None:
    rendered = render(_stored(orientation, fmt), FULL_SIZE)
    assert (rendered.width, rendered.height) == UPRIGHT.size
    output = decoded(rendered.variants[0].data)
    assert output.size == UPRIGHT.size
    assert mean_difference(output, UPRIGHT) < 4


def test_render_scales_a_turned_jpeg_to_the_upright_width() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(
        asymmetric((3000, 2000)).transpose(Image.Transpose.ROTATE_90),
        "JPEG",
        exif=exif.tobytes(),
    )
    rendered = render(data, Preset(name="one", variants=(VariantSpec("w", 500),)))
    assert (rendered.width, rendered.height) == (3000, 2000)
    assert (rendered.variants[0].width, rendered.variants[0].height) == (500, 333)
    upright = asymmetric((500, 333))
    assert mean_difference(decoded(rendered.variants[0].data), upright) < 6


@pytest.mark.parametrize("orientation", range(2, 9))
def test_render_does_not_turn_heif_twice(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    transpose = STORED_AS[orientation]
    assert transpose is not None
    data = encoded(
        UPRIGHT.transpose(transpose), "HEIF", exif=exif.tobytes(), quality=95
    )
    rendered = render(data, FULL_SIZE)
    output = decoded(rendered.variants[0].data)
    assert output.size == UPRIGHT.size
    assert mean_difference(output, UPRIGHT) < 6


def test_render_ignores_an_out_of_range_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 42
    rendered = render(encoded(UPRIGHT, "JPEG", exif=exif.tobytes()), FULL_SIZE)
    assert mean_difference(decoded(rendered.variants[0].data), UPRIGHT) < 4
