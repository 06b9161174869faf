"""The one place where Pillow's and its plugins' exceptions become rejections."""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from app.errors import ImageRejected

DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    RuntimeError,
    MemoryError,
)
"""What decoders raise on malformed input; Pillow documents no narrower set.

Only decoder calls are wrapped with :func:`rejecting_bad_data`, so these broad
types do not hide mistakes in the engine's own code.
"""


@contextmanager
def rejecting_bad_data(format_name: str) -> Iterator[None]:
    """Turn a decoder's exception for malformed input into ``corrupt_image``.

    Pillow's own decompression-bomb check (a GIF frame that grows the canvas,
    a huge TIFF tile) becomes ``too_many_pixels``, and running out of memory
    ``too_large_to_decode``.
    """
    try:
        with _malformed_metadata_ignored():
            yield
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            f"The {format_name.upper()} image grows past its declared size while "
            f"decoding, beyond the safety limit of {_pillow_limit()} megapixels.",
            code="too_many_pixels",
        ) from exc
    except MemoryError as exc:
        raise too_large_to_decode(format_name) from exc
    except DECODER_ERRORS as exc:
        raise ImageRejected(
            f"The file looks like a {format_name.upper()} image but its data is "
            "damaged or incomplete.",
            code="corrupt_image",
        ) from exc


@contextmanager
def _malformed_metadata_ignored() -> Iterator[None]:
    """Silence the ``UserWarning``s Pillow gives for damaged metadata.

    A broken EXIF block or TIFF tag around good pixels is not a reason to
    refuse a photo, and whether a warning is an error must not depend on how
    the process configured its warning filters. Pillow's decompression-bomb
    warning, on the other hand, is always raised, to become a rejection.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def too_large_to_decode(format_name: str) -> ImageRejected:
    """The rejection for an image whose decoding ran out of memory.

    A worker child runs under an address-space limit (see ``workers.sandbox``),
    so a decoder that allocates past it fails this one job, not the worker.
    """
    return ImageRejected(
        f"The {format_name.upper() or 'image'} file needs more memory to decode "
        "than a worker may use.",
        code="too_large_to_decode",
    )


def _pillow_limit() -> str:
    limit = Image.MAX_IMAGE_PIXELS
    return "unlimited" if limit is None else f"{limit / 1e6:.0f}"
