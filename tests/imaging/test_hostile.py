"""Bad input of every kind ends in ImageRejected with a stable code."""

from __future__ import annotations

import os
import random
import resource
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from app.errors import REJECTION_CODES, ImageRejected
from app.imaging import Limits, render
from app.presets import Preset

from .factories import (
    AVATAR,
    DEFAULT,
    STILL,
    asymmetric,
    encoded,
    gif,
    png_chunk,
    png_with_header,
)


def _rejection(
    data: bytes, preset: Preset = DEFAULT, limits: Limits | None = None
) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        render(data, preset, limits)
    return caught.value


def _truncated(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


def _noisy(fmt: str) -> bytes:
    return encoded(Image.effect_noise((256, 256), 64).convert("RGB"), fmt)


def _png_with_bad_idat_crc() -> bytes:
    data = bytearray(encoded(asymmetric((64, 64)), "PNG"))
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    data[idat + 4 + length] ^= 0xFF
    return bytes(data)


def _png_with_flipped_pixel_byte() -> bytes:
    data = bytearray(encoded(asymmetric((64, 64)), "PNG"))
    data[data.index(b"IDAT") + 20] ^= 0x55
    return bytes(data)


def _png_with_bad_header_crc() -> bytes:
    data = bytearray(encoded(asymmetric((64, 64)), "PNG"))
    data[29] ^= 0xFF
    return bytes(data)


def _zero_height_png() -> bytes:
    header = struct.pack(">IIBBBBB", 10, 0, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def _svg_with_script() -> bytes:
    return (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b"<script>alert(document.cookie)</script></svg>"
    )


def _eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"


def _pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(b"", "empty_file", id="empty"),
        pytest.param(os.urandom(16), "unsupported_format", id="random-bytes"),
        pytest.param(_svg_with_script(), "unsupported_format", id="svg-script"),
        pytest.param(
            b"<html><body><script>alert(1)</script></body></html>",
            "unsupported_format",
            id="html-named-png",
        ),
        pytest.param(_eps(), "unsupported_format", id="eps"),
        pytest.param(_pdf(), "unsupported_format", id="pdf"),
        pytest.param(
            encoded(asymmetric((16, 16)), "BMP"), "unsupported_format", id="bmp"
        ),
        pytest.param(
            encoded(asymmetric((16, 16)), "ICO"), "unsupported_format", id="ico"
        ),
        pytest.param(b"8BPS\x00\x01" + bytes(40), "unsupported_format", id="psd"),
        pytest.param(
            encoded(asymmetric((16, 16)), "JPEG2000"), "unsupported_format", id="jp2"
        ),
        pytest.param(
            b"SIMPLE  =                    T" + bytes(50),
            "unsupported_format",
            id="fits",
        ),
        pytest.param(_truncated(_noisy("JPEG"), 0.5), "corrupt_image", id="jpeg-cut"),
        pytest.param(_truncated(_noisy("PNG"), 0.5), "corrupt_image", id="png-cut"),
        pytest.param(_truncated(_noisy("WEBP"), 0.5), "corrupt_image", id="webp-cut"),
        pytest.param(_noisy("JPEG")[:200], "corrupt_image", id="jpeg-header-only"),
        pytest.param(_png_with_bad_idat_crc(), "corrupt_image", id="png-idat-crc"),
        pytest.param(
            _png_with_flipped_pixel_byte(), "corrupt_image", id="png-bit-flip"
        ),
        pytest.param(_png_with_bad_header_crc(), "corrupt_image", id="png-ihdr-crc"),
        pytest.param(_zero_height_png(), "too_small", id="png-zero-height"),
        pytest.param(png_with_header(65000, 10), "too_many_pixels", id="png-65000x10"),
    ],
)
def test_render_rejects_bad_input_with_its_code(data: bytes, code: str) -> None:
    rejection = _rejection(data)
    assert rejection.code == code
    assert rejection.message.endswith(".")


def test_render_rejects_eps_disguised_as_png_without_ghostscript(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("An external program was started.")

    monkeypatch.setattr("subprocess.Popen.__init__", no_subprocess)
    assert _rejection(_eps()).code == "unsupported_format"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_eps(), id="eps"),
        pytest.param(_pdf(), id="pdf"),
        pytest.param(_svg_with_script(), id="svg"),
        pytest.param(b"<html><script>alert(1)</script></html>", id="html"),
    ],
)
def test_render_judges_the_bytes_not_a_png_file_name(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "holiday.png"
    path.write_bytes(data)
    with pytest.raises(ImageRejected) as caught:
        render(path, DEFAULT)
    assert caught.value.code == "unsupported_format"
    assert "<" not in caught.value.message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(png_with_header(30000, 30000), id="png-30000x30000"),
        pytest.param(gif((65535, 65535), 1, (1, 1)), id="gif-huge-screen"),
    ],
)
def test_render_rejects_decompression_bombs_before_decoding(data: bytes) -> None:
    started = time.perf_counter()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rejection = _rejection(data)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert rejection.code == "too_many_pixels"
    assert "megapixels; the limit is 50" in rejection.message
    assert time.perf_counter() - started < 1.0
    assert grown_kib < 50 * 1024


def test_render_names_the_size_and_limit_of_a_bomb() -> None:
    rejection = _rejection(png_with_header(30000, 30000))
    assert rejection.message == (
        "The image is 30000x30000, 900 megapixels; the limit is 50."
    )


def test_render_rejects_files_over_the_byte_limit() -> None:
    data = encoded(asymmetric((64, 64)), "PNG")
    rejection = _rejection(data, limits=Limits(max_bytes=100))
    assert rejection.code == "file_too_large"
    assert (
        rejection.message == f"The file is {len(data)} bytes; the limit is 100 bytes."
    )


def test_render_rejects_images_under_the_minimum_side() -> None:
    rejection = _rejection(
        encoded(asymmetric((40, 8)), "PNG"), limits=Limits(min_dimension=16)
    )
    assert rejection.code == "too_small"
    assert "40x8" in rejection.message and "16" in rejection.message


def test_render_rejects_formats_left_out_of_the_allow_list() -> None:
    data = encoded(asymmetric((16, 16)), "TIFF")
    rejection = _rejection(
        data, limits=Limits(allowed_formats=frozenset({"JPEG", "PNG"}))
    )
    assert rejection.code == "unsupported_format"


def test_render_rejects_animations_with_thousands_of_frames() -> None:
    data = gif((8, 8), 3000, (8, 8))
    started = time.perf_counter()
    rejection = _rejection(data)
    assert rejection.code == "too_many_frames"
    assert rejection.message == "The animation has 3000 frames; the limit is 100."
    assert time.perf_counter() - started < 5.0


def test_render_takes_the_first_frame_of_a_huge_animation_when_still() -> None:
    rendered = render(gif((8, 8), 3000, (8, 8)), STILL)
    assert not rendered.animated
    assert rendered.variants[0].width == 8


def test_render_counts_pixels_over_all_frames_of_an_animation() -> None:
    rejection = _rejection(gif((1000, 1000), 60, (1, 1)))
    assert rejection.code == "too_many_pixels"
    assert "60 frames" in rejection.message


def test_render_rejects_a_gif_frame_that_grows_the_canvas_past_the_limit() -> None:
    data = bytearray(gif((4, 4), 2, (1, 1)))
    second = data.rindex(b"\x2c\x00\x00\x00\x00")
    data[second + 5 : second + 9] = struct.pack("<HH", 60000, 60000)
    rejection = _rejection(bytes(data))
    assert rejection.code in {"too_many_pixels", "corrupt_image"}


@pytest.mark.parametrize("seed", range(60))
def test_render_either_renders_or_rejects_mutated_files(seed: int) -> None:
    rng = random.Random(seed)
    fmt = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "AVIF")[seed % 6]
    data = bytearray(encoded(asymmetric((48, 32)), fmt))
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.2:
        del data[rng.randrange(len(data)) :]
    try:
        rendered = render(bytes(data), AVATAR)
    except ImageRejected as rejection:
        assert rejection.code in REJECTION_CODES
    else:
        assert len(rendered.variants) == len(AVATAR.variants)
