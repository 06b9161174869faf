from __future__ import annotations

import pytest
from PIL import Image

from app.imaging import sniff, variant_content_type

from .factories import asymmetric, encoded


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("TIFF", "tiff"),
        ("AVIF", "avif"),
        ("HEIF", "heif"),
    ],
)
def test_sniff_names_allowed_formats_from_their_bytes(fmt: str, expected: str) -> None:
    data = encoded(asymmetric((32, 24)), fmt)
    assert sniff(data[:64]) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x00",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">',
        b"<!DOCTYPE html><html><script>alert(1)</script>",
        b"%PDF-1.7\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n",
        b"8BPS\x00\x01",
        b"\x00\x00\x01\x00\x01\x00",
        b"BM6\x00\x00\x00",
        b"PK\x03\x04",
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    ],
)
def test_sniff_refuses_everything_else(head: bytes) -> None:
    assert sniff(head) is None


def test_sniff_prefers_avif_brand_over_generic_heif_brand() -> None:
    head = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf"
    assert sniff(head) == "avif"


def test_sniff_needs_only_the_first_bytes() -> None:
    data = encoded(Image.new("RGB", (8, 8)), "PNG")
    assert sniff(data[:8]) == "png"


def test_variant_content_type_for_webp() -> None:
    assert variant_content_type("webp") == "image/webp"
