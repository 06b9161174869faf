"""The image engine: bytes in, upright sRGB variants and a placeholder out.

``render`` runs the whole pipeline on one input; ``sniff`` tells from the
first bytes whether a file can be an accepted image at all, so an upload can
be refused before it is stored.
"""

from app.imaging.encode import variant_content_type
from app.imaging.pipeline import render
from app.imaging.sniff import SNIFF_BYTES, sniff
from app.imaging.types import Limits, Rendered, RenderedVariant

__all__ = [
    "SNIFF_BYTES",
    "Limits",
    "Rendered",
    "RenderedVariant",
    "render",
    "sniff",
    "variant_content_type",
]
