from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from app.imaging import Rendered, render
from app.presets import Preset, VariantSpec

from .factories import AVATAR, DEFAULT, asymmetric, decoded, encoded, riff_chunks


def _widths(rendered: Rendered) -> list[tuple[str, int, int]]:
    return [(v.name, v.width, v.height) for v in rendered.variants]


def test_render_makes_every_default_variant_at_its_exact_size() -> None:
    data = encoded(asymmetric((2400, 1600)), "JPEG", quality=90)
    rendered = render(data, DEFAULT)
    assert (rendered.width, rendered.height) == (2400, 1600)
    assert rendered.original_format == "jpeg"
    assert _widths(rendered) == [
        ("sm", 320, 213),
        ("md", 768, 512),
        ("lg", 1280, 853),
        ("xl", 1920, 1280),
    ]
    for variant in rendered.variants:
        image = decoded(variant.data)
        assert image.format == "WEBP"
        assert image.size == (variant.width, variant.height)
        assert variant.content_type == "image/webp"
        assert variant.format == "webp"


def test_render_never_upscales_and_keeps_every_variant_name() -> None:
    rendered = render(encoded(asymmetric((500, 300)), "PNG"), DEFAULT)
    assert _widths(rendered) == [
        ("sm", 320, 192),
        ("md", 500, 300),
        ("lg", 500, 300),
        ("xl", 500, 300),
    ]


def test_render_avatar_crops_squares_no_larger_than_the_shorter_side() -> None:
    rendered = render(encoded(asymmetric((900, 300)), "PNG"), AVATAR)
    assert _widths(rendered) == [
        ("xs", 64, 64),
        ("sm", 128, 128),
        ("md", 256, 256),
        ("lg", 300, 300),
    ]


def test_render_keeps_the_presets_variant_order() -> None:
    preset = Preset(
        name="odd", variants=(VariantSpec("big", 200), VariantSpec("small", 50))
    )
    rendered = render(encoded(asymmetric((400, 400)), "PNG"), preset)
    assert [v.name for v in rendered.variants] == ["big", "small"]
    assert [v.width for v in rendered.variants] == [200, 50]


@pytest.mark.parametrize(
    ("size", "preset", "expected"),
    [
        ((1, 1), DEFAULT, [(1, 1)] * 4),
        ((1, 1), AVATAR, [(1, 1)] * 4),
        ((20000, 24), DEFAULT, [(320, 1), (768, 1), (1280, 2), (1920, 2)]),
        ((20000, 24), AVATAR, [(24, 24)] * 4),
        ((24, 5000), DEFAULT, [(24, 5000)] * 4),
        ((24, 20000), DEFAULT, [(20, 16383)] * 4),
    ],
)
def test_render_handles_extreme_shapes(
    size: tuple[int, int], preset: Preset, expected: list[tuple[int, int]]
) -> None:
    rendered = render(encoded(Image.new("RGB", size, (10, 120, 200)), "PNG"), preset)
    assert [(v.width, v.height) for v in rendered.variants] == expected
    for variant in rendered.variants:
        assert decoded(variant.data).size == (variant.width, variant.height)


def test_render_output_carries_no_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    exif[0x0112] = 1
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}
    data = encoded(
        asymmetric((640, 480)),
        "JPEG",
        exif=exif,
        icc_profile=b"not a profile but bytes",
        xmp=b"<x:xmpmeta>secret</x:xmpmeta>",
        comment=b"hello",
    )
    rendered = render(data, DEFAULT)
    for variant in rendered.variants:
        chunks = riff_chunks(variant.data)
        assert not {b"EXIF", b"XMP ", b"ICCP"} & set(chunks)
        assert b"SpyCam" not in variant.data
        assert b"secret" not in variant.data
        assert "exif" not in decoded(variant.data).info


@pytest.mark.parametrize("where", ["appended", "comment"])
def test_render_reencodes_so_smuggled_payloads_are_gone(where: str) -> None:
    payload = b"PK\x03\x04<script>alert('owned')</script>" * 20
    if where == "appended":
        data = encoded(asymmetric((300, 200)), "JPEG") + payload
    else:
        data = encoded(asymmetric((300, 200)), "JPEG", comment=payload)
    assert payload in data
    rendered = render(data, DEFAULT)
    assert all(b"alert('owned')" not in v.data for v in rendered.variants)


def test_render_accepts_a_path_a_stream_and_bytes(tmp_path: Path) -> None:
    data = encoded(asymmetric((120, 80)), "PNG")
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    results = [render(path, AVATAR), render(str(path), AVATAR)]
    results.append(render(io.BytesIO(data), AVATAR))
    results.append(render(data, AVATAR))
    assert {r.variants[0].data for r in results} == {results[0].variants[0].data}


def test_render_reports_blurhash_and_dominant_colour() -> None:
    image = Image.new("RGB", (400, 300), (200, 30, 40))
    rendered = render(encoded(image, "PNG"), DEFAULT)
    assert len(rendered.blurhash) == 2 + 4 + 2 * (4 * 3 - 1)
    red, green, blue = (int(rendered.dominant_color[i : i + 2], 16) for i in (1, 3, 5))
    assert abs(red - 200) <= 4 and abs(green - 30) <= 4 and abs(blue - 40) <= 4


@pytest.mark.parametrize(
    ("size", "size_flag"),
    [((400, 300), "L"), ((300, 400), "T")],  # (x - 1) + (y - 1) * 9 in base 83
)
def test_render_uses_four_by_three_blurhash_turned_for_portraits(
    size: tuple[int, int], size_flag: str
) -> None:
    rendered = render(encoded(asymmetric(size), "PNG"), DEFAULT)
    assert rendered.blurhash[0] == size_flag
