"""Conformance over the shared photo corpus named by ``IMAGE_PIPELINE_CORPUS``.

Collected only when the variable is set (see conftest.py); a file missing
from the corpus then fails its tests.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from app.imaging import Rendered, render
from app.imaging.plan import variant_size
from app.presets import Preset

from .factories import AVATAR, DEFAULT, decoded, mean_difference, riff_chunks

pytestmark = pytest.mark.corpus

CORPUS = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", "."))
SIZED = {
    "photos/phone-12mp-4032x3024.jpg": (4032, 3024),
    "photos/phone-9mp-4608x1976.jpg": (4608, 1976),
    "photos/phone-8mp-3264x2448.jpg": (3264, 2448),
    "photos/camera-gps-640x480.jpg": (640, 480),
    "photos/xmp-no-exif-322x466.jpg": (322, 466),
    "photos/invalid-exif-636x227.jpg": (636, 227),
    "photos/rgba-635x348.tiff": (635, 348),
    "heic/iphone-13-pro-max-p3.heic": (3024, 4032),
    "heic/sample-640x426.heif": (640, 426),
}
ORIENTED = {
    **{f"orientation/landscape-{n}.jpg": (1800, 1200) for n in range(9)},
    **{f"orientation/portrait-{n}.jpg": (1200, 1800) for n in range(9)},
    **{f"orientation/small-landscape-{n}.jpg": (600, 450) for n in range(1, 9)},
    **{f"orientation/small-portrait-{n}.jpg": (450, 600) for n in range(1, 9)},
}
EVERY_FILE = {**SIZED, **ORIENTED}
ORIENTATION_SETS = [
    ("landscape", range(1, 9), 0),
    ("portrait", range(1, 9), 0),
    ("small-landscape", range(2, 9), 1),
    ("small-portrait", range(2, 9), 1),
]


def _render(name: str, preset: Preset) -> Rendered:
    return render(CORPUS / name, preset)


def _assert_exact_sizes(rendered: Rendered, preset: Preset) -> None:
    for spec, variant in zip(preset.variants, rendered.variants, strict=True):
        expected = variant_size(spec, rendered.width, rendered.height, preset.fit)
        assert (variant.width, variant.height) == expected
        assert decoded(variant.data).size == expected


@pytest.mark.parametrize("preset", [DEFAULT, AVATAR], ids=["default", "avatar"])
@pytest.mark.parametrize("name", sorted(EVERY_FILE))
def test_corpus_file_renders_upright_at_exact_sizes(name: str, preset: Preset) -> None:
    rendered = _render(name, preset)
    assert (rendered.width, rendered.height) == EVERY_FILE[name]
    _assert_exact_sizes(rendered, preset)


@pytest.mark.parametrize("name", sorted(EVERY_FILE))
def test_corpus_output_carries_no_metadata(name: str) -> None:
    for variant in _render(name, DEFAULT).variants:
        assert not {b"EXIF", b"XMP ", b"ICCP"} & set(riff_chunks(variant.data))
        output = decoded(variant.data)
        assert not output.getexif() and "xmp" not in output.info


@pytest.mark.parametrize(("stem", "numbers", "reference"), ORIENTATION_SETS)
def test_corpus_orientations_look_like_the_upright_photo(
    stem: str, numbers: range, reference: int
) -> None:
    upright = decoded(
        _render(f"orientation/{stem}-{reference}.jpg", DEFAULT).variants[1].data
    )
    for number in numbers:
        output = _render(f"orientation/{stem}-{number}.jpg", DEFAULT)
        assert mean_difference(decoded(output.variants[1].data), upright) < 10, number


def test_corpus_heic_display_p3_is_converted_to_srgb() -> None:
    path = CORPUS / "heic/iphone-13-pro-max-p3.heic"
    original = Image.open(path)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(original.info["icc_profile"]))
    assert "P3" in ImageCms.getProfileDescription(profile)
    small = original.convert("RGB").resize((320, 427), Image.Resampling.LANCZOS)
    srgb = ImageCms.profileToProfile(small, profile, ImageCms.createProfile("sRGB"))
    assert srgb is not None
    output = decoded(
        _render("heic/iphone-13-pro-max-p3.heic", DEFAULT).variants[0].data
    )
    assert mean_difference(output, srgb) < mean_difference(output, small)


def test_corpus_tiff_with_alpha_keeps_alpha() -> None:
    """The file's alpha plane happens to be opaque everywhere; WebP then stores
    no alpha at all, so what is compared is the alpha a viewer would see."""
    source = Image.open(CORPUS / "photos/rgba-635x348.tiff")
    assert source.mode == "RGBA"
    for variant in _render("photos/rgba-635x348.tiff", DEFAULT).variants:
        output = decoded(variant.data).convert("RGBA").getchannel("A")
        expected = source.getchannel("A").resize(output.size)
        assert mean_difference(output, expected) < 2
