"""Seed files for the fuzzer: small, valid images of every accepted family.

They are made here with Pillow and pillow-heif, in the shapes uploads take
(progressive and CMYK JPEGs, palette and 16-bit PNGs, animated WebP and GIF,
HEIC, AVIF, and the TIFF layouts that the engine also reads). With
``IMAGE_PIPELINE_CORPUS`` set, a few real photos of the shared corpus join
them; a missing one fails the run instead of shrinking it.
"""

from __future__ import annotations

import os
from functools import cache
from io import BytesIO
from pathlib import Path

import pillow_heif
from PIL import Image, ImageDraw

pillow_heif.register_heif_opener()

CORPUS_ENV = "IMAGE_PIPELINE_CORPUS"
CORPUS_FILES = (
    "photos/camera-gps-640x480.jpg",
    "photos/invalid-exif-636x227.jpg",
    "photos/xmp-no-exif-322x466.jpg",
    "heic/sample-640x426.heif",
    "orientation/small-portrait-6.jpg",
)
"""The corpus's small photos: real encoders' output at a fuzzing pace."""

SIZE = (72, 48)


def picture(mode: str = "RGB", size: tuple[int, int] = SIZE) -> Image.Image:
    """Shapes and noise, so that every part of the compressed data matters."""
    noise = Image.effect_noise(size, 48).convert("RGB")
    image = Image.blend(noise, Image.new("RGB", size, (200, 90, 40)), 0.5)
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, 0, width // 3, height), fill=(20, 40, 160))
    draw.ellipse((width // 2, height // 4, width - 4, height - 4), fill=(240, 240, 0))
    return image.convert(mode) if mode != "RGB" else image


def encode(
    image: Image.Image | list[Image.Image], fmt: str, **options: object
) -> bytes:
    buffer = BytesIO()
    if isinstance(image, list):
        options.update(save_all=True, append_images=image[1:], duration=80, loop=0)
        image = image[0]
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _oriented_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Fuzz Camera"
    return exif.tobytes()


def _frames(count: int, mode: str) -> list[Image.Image]:
    return [picture("RGB").rotate(30 * index).convert(mode) for index in range(count)]


def _sixteen_bit() -> Image.Image:
    return (
        Image.linear_gradient("L")
        .resize(SIZE)
        .convert("I")
        .point(lambda value: value * 257)
        .convert("I;16")
    )


def _palette_with_transparency() -> bytes:
    image = picture("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def _heif(mode: str) -> bytes:
    return encode(picture(mode), "HEIF", quality=60)


@cache
def generated_seeds() -> dict[str, bytes]:
    """Name to bytes of every generated seed."""
    return {
        "jpeg-baseline": encode(picture(), "JPEG", quality=85),
        "jpeg-progressive": encode(picture(), "JPEG", progressive=True),
        "jpeg-exif-orientation": encode(picture(), "JPEG", exif=_oriented_exif()),
        "jpeg-cmyk": encode(picture("CMYK"), "JPEG"),
        "jpeg-grey": encode(picture("L"), "JPEG"),
        "png-rgb": encode(picture(), "PNG"),
        "png-rgba-interlaced": encode(picture("RGBA"), "PNG", interlace=1),
        "png-palette-transparent": _palette_with_transparency(),
        "png-16-bit": encode(_sixteen_bit(), "PNG"),
        "png-la": encode(picture("LA"), "PNG"),
        "webp-lossy": encode(picture(), "WEBP", quality=70),
        "webp-lossless-alpha": encode(picture("RGBA"), "WEBP", lossless=True),
        "webp-animated": encode(_frames(3, "RGBA"), "WEBP"),
        "gif-still": encode(picture("P"), "GIF"),
        "gif-animated": encode(_frames(3, "P"), "GIF", transparency=0),
        "heic": _heif("RGB"),
        "heic-alpha": _heif("RGBA"),
        "avif": encode(picture(), "AVIF", quality=60),
        "tiff-lzw-alpha": encode(picture("RGBA"), "TIFF", compression="tiff_lzw"),
        "tiff-16-bit": encode(_sixteen_bit(), "TIFF"),
        "tiff-cmyk-jpeg": encode(picture("CMYK"), "TIFF", compression="jpeg"),
        "tiff-float": encode(picture("F"), "TIFF"),
    }


def corpus_seeds() -> dict[str, bytes]:
    """The corpus photos named in :data:`CORPUS_FILES`, or none without the
    variable; each named file must exist."""
    root = os.environ.get(CORPUS_ENV)
    if not root:
        return {}
    seeds = {}
    for name in CORPUS_FILES:
        path = Path(root) / name
        assert path.is_file(), f"{CORPUS_ENV} is set but {path} is missing"
        seeds[f"corpus:{name}"] = path.read_bytes()
    return seeds


def all_seeds() -> dict[str, bytes]:
    return {**generated_seeds(), **corpus_seeds()}
