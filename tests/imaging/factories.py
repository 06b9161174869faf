"""Images built on the fly for the engine's tests; no test reads a stored file."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

from PIL import Image, ImageDraw

from app.presets import Preset, build_presets

PRESETS = build_presets(None)
DEFAULT: Preset = PRESETS["default"]
AVATAR: Preset = PRESETS["avatar"]
STILL = Preset(name="still", variants=DEFAULT.variants, animated=False)


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def asymmetric(size: tuple[int, int] = (240, 160)) -> Image.Image:
    """A picture that every flip and turn changes: four coloured quadrants
    of unequal size and a dark bar along the top edge."""
    width, height = size
    image = Image.new("RGB", size, (240, 240, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 3, height // 2), fill=(220, 30, 30))
    draw.rectangle((width // 3, height // 2, width, height), fill=(30, 60, 220))
    draw.rectangle((0, height * 3 // 4, width // 5, height), fill=(30, 200, 60))
    draw.rectangle((0, 0, width, height // 10), fill=(20, 20, 20))
    return image


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute difference per channel, 0 (same) to 255, at equal size."""
    first = first.convert("RGB")
    second = second.convert("RGB").resize(first.size, Image.Resampling.BOX)
    pairs = zip(first.tobytes(), second.tobytes(), strict=True)
    return sum(abs(a - b) for a, b in pairs) / (first.width * first.height * 3)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_with_header(width: int, height: int, rows: int = 1) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height`` greyscale
    pixels while its data holds only a few rows: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((min(width, 4096) + 7) // 8)
    data = zlib.compress(row * rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", data)
        + png_chunk(b"IEND", b"")
    )


def gif(screen: tuple[int, int], frames: int, frame_size: tuple[int, int]) -> bytes:
    """A GIF written byte by byte: ``frames`` one-colour frames on a canvas."""
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", *screen, 0x80, 0, 0)
    out += b"\x00\x00\x00\xff\xff\xff"
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for index in range(frames):
        out += b"\x21\xf9\x04\x00\x05\x00\x00\x00"
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame_size, 0)
        out += _gif_pixels(frame_size, index % 2)
    out += b"\x3b"
    return bytes(out)


def _gif_pixels(size: tuple[int, int], colour: int) -> bytes:
    """LZW data for a frame of one colour, with a clear code before each pixel
    so the codes never grow past three bits."""
    count = size[0] * size[1]
    codes = [4, colour] * count + [5]
    bits = 0
    length = 0
    for code in codes:
        bits |= code << length
        length += 3
    packed = bits.to_bytes((length + 7) // 8, "little")
    blocks = b"".join(
        bytes([len(packed[i : i + 255])]) + packed[i : i + 255]
        for i in range(0, len(packed), 255)
    )
    return b"\x02" + blocks + b"\x00"


def riff_chunks(data: bytes) -> list[bytes]:
    """The top-level chunk names of a RIFF (WebP) file."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    names = []
    offset = 12
    while offset + 8 <= len(data):
        name = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        names.append(name)
        offset += 8 + size + (size & 1)
    return names


ADOBE_RGB_COLORANTS = (
    (0.60974, 0.31111, 0.01947),
    (0.20528, 0.62567, 0.06087),
    (0.14919, 0.06322, 0.74457),
)
"""Adobe RGB (1998) primaries adapted to D50, as an ICC profile stores them."""


def rgb_profile(
    colorants: tuple[tuple[float, float, float], ...], gamma: float, name: str
) -> bytes:
    """A minimal ICC v2 display profile: three colorants and one gamma curve."""
    description = name.encode("ascii") + b"\x00"
    tags = [
        (
            b"desc",
            b"desc"
            + bytes(4)
            + struct.pack(">I", len(description))
            + description
            + bytes(4 + 4 + 2 + 1 + 67),
        ),
        (b"wtpt", _xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", _xyz(colorants[0])),
        (b"gXYZ", _xyz(colorants[1])),
        (b"bXYZ", _xyz(colorants[2])),
        (b"rTRC", _curve(gamma)),
        (b"gTRC", _curve(gamma)),
        (b"bTRC", _curve(gamma)),
        (b"cprt", b"text" + bytes(4) + b"none\x00\x00\x00\x00"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    body = b""
    for signature, payload in tags:
        padded = payload + bytes(-len(payload) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(payload))
        body += padded
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"none"
        + b"\x02\x10\x00\x00"
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + bytes(4 + 4 + 4 + 8 + 4)
        + struct.pack(">I", 0)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"none"
    )
    header += bytes(128 - len(header))
    return header + table + body


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(value: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(part) for part in value)


def _curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
