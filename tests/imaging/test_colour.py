"""Colour: every mode and embedded profile comes out as correct 8-bit sRGB."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms

from app.imaging import render
from app.presets import Preset, VariantSpec

from .factories import (
    ADOBE_RGB_COLORANTS,
    asymmetric,
    decoded,
    encoded,
    mean_difference,
    rgb_profile,
)

SMALL = Preset(name="small", variants=(VariantSpec("s", 64),))
SWATCHES = [(60, 160, 60), (200, 50, 40), (40, 90, 200), (230, 200, 60)]
ADOBE_RGB = rgb_profile(ADOBE_RGB_COLORANTS, 563 / 256, "Test Adobe RGB")


def _swatch_image() -> Image.Image:
    image = Image.new("RGB", (64, 64))
    for index, colour in enumerate(SWATCHES):
        image.paste(colour, (index * 16, 0, index * 16 + 16, 64))
    return image


def _swatches(image: Image.Image) -> list[tuple[int, ...]]:
    rgb = image.convert("RGB")
    return [rgb.getpixel((index * 16 + 8, 32)) for index in range(4)]  # type: ignore[misc]


def _swatches_match(
    output: Image.Image, reference: Image.Image, tolerance: int
) -> bool:
    pairs = zip(_swatches(output), _swatches(reference), strict=True)
    return all(_close(first, second, tolerance) for first, second in pairs)


def _render_one(data: bytes) -> Image.Image:
    return decoded(render(data, SMALL).variants[0].data)


def _centre(image: Image.Image) -> tuple[int, ...]:
    pixel = image.convert("RGBA").getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


def _close(first: tuple[int, ...], second: tuple[int, ...], tolerance: int) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(first, second, strict=False))


def _srgb_reference(image: Image.Image, profile: bytes) -> Image.Image:
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    srgb = ImageCms.createProfile("sRGB")
    result = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
    assert result is not None
    return result


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_render_converts_an_adobe_rgb_image_to_srgb(fmt: str) -> None:
    image = _swatch_image()
    output = _render_one(encoded(image, fmt, icc_profile=ADOBE_RGB, quality=95))
    assert _swatches_match(output, _srgb_reference(image, ADOBE_RGB), 4)
    assert not _swatches_match(output, image, 12)


def test_render_converts_a_heif_with_an_embedded_profile() -> None:
    image = _swatch_image()
    data = encoded(image, "HEIF", icc_profile=ADOBE_RGB, quality=95)
    output = _render_one(data)
    assert _swatches_match(output, _srgb_reference(image, ADOBE_RGB), 6)


def test_render_ignores_an_unreadable_profile() -> None:
    image = _swatch_image()
    output = _render_one(encoded(image, "PNG", icc_profile=b"\x00" * 200))
    assert _swatches_match(output, image, 4)


def test_render_keeps_srgb_pixels_under_an_srgb_profile() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = _swatch_image()
    assert _swatches_match(
        _render_one(encoded(image, "PNG", icc_profile=srgb)), image, 4
    )


def _cmyk_yellow() -> Image.Image:
    return Image.new("CMYK", (64, 64), (0, 0, 255, 0))


def _cmyk_jpeg_without_adobe_marker() -> bytes:
    """A plain CMYK JPEG: Pillow writes Adobe-inverted data with an APP14
    marker, so invert the pixels first and then drop the marker."""
    inverted = Image.eval(_cmyk_yellow(), lambda value: 255 - value)
    data = encoded(inverted, "JPEG", quality=95)
    start = data.index(b"\xff\xee")
    length = int.from_bytes(data[start + 2 : start + 4], "big")
    return data[:start] + data[start + 2 + length :]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encoded(_cmyk_yellow(), "JPEG", quality=95), id="adobe-jpeg"),
        pytest.param(_cmyk_jpeg_without_adobe_marker(), id="plain-jpeg"),
        pytest.param(encoded(_cmyk_yellow(), "TIFF"), id="tiff"),
    ],
)
def test_render_shows_cmyk_in_its_colours_not_negative(data: bytes) -> None:
    assert b"Adobe" in data or b"\xff\xee" not in data
    assert _close(_centre(_render_one(data)), (255, 255, 0, 255), 12)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param(Image.new("L", (64, 64), 128), (128, 128, 128, 255), id="grey"),
        pytest.param(Image.new("1", (64, 64), 1), (255, 255, 255, 255), id="1-bit"),
        pytest.param(
            Image.new("I;16", (64, 64), 0x8080), (128, 128, 128, 255), id="grey-16"
        ),
        pytest.param(Image.new("LA", (64, 64), (90, 128)), (90, 90, 90, 128), id="LA"),
        pytest.param(
            Image.new("RGBA", (64, 64), (20, 140, 220, 200)),
            (20, 140, 220, 200),
            id="RGBA",
        ),
    ],
)
def test_render_gives_every_png_mode_its_colour(
    image: Image.Image, expected: tuple[int, ...]
) -> None:
    output = _render_one(encoded(image, "PNG"))
    assert output.mode == ("RGBA" if expected[3] < 255 else "RGB")
    assert _close(_centre(output), expected, 3)


def test_render_reads_sixteen_bit_rgb_png() -> None:
    data = encoded(asymmetric((64, 64)), "PNG")
    sixteen = decoded(data)
    raw = sixteen.tobytes()
    wide = bytes(b for byte in raw for b in (byte, byte))
    image = Image.frombytes("RGB", (64, 64), wide, "raw", "RGB;16B")
    output = _render_one(encoded(image, "PNG"))
    assert mean_difference(output, sixteen) < 5


def test_render_keeps_palette_transparency_as_alpha() -> None:
    image = Image.new("P", (64, 64), 1)
    image.putpalette([255, 255, 255, 200, 30, 30] + [0] * 762)
    image.paste(0, (0, 0, 32, 64))
    output = _render_one(encoded(image, "PNG", transparency=0)).convert("RGBA")
    assert output.getchannel("A").getpixel((8, 32)) == 0
    assert _close(_pixel(output, (56, 32)), (200, 30, 30, 255), 3)


def _pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "HEIF", "AVIF", "GIF"])
def test_render_keeps_alpha_in_every_variant(fmt: str) -> None:
    image = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    image.paste((250, 100, 0, 255), (200, 150, 600, 450))
    preset = Preset(name="two", variants=(VariantSpec("a", 64), VariantSpec("b", 400)))
    rendered = render(encoded(image, fmt, quality=90), preset)
    for variant in rendered.variants:
        output = decoded(variant.data)
        assert output.mode == "RGBA"
        alpha = output.getchannel("A")
        assert alpha.getpixel((0, 0)) == 0
        assert alpha.getpixel((output.width // 2, output.height // 2)) == 255
