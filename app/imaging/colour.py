"""Step 6: bring every frame to 8-bit sRGB, as RGB or, with alpha, RGBA.

Embedded ICC profiles (Display P3, Adobe RGB, CMYK press profiles) are
converted with LittleCMS. A profile that cannot be read is ignored and the
pixels are taken as sRGB, which is what a browser would show.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from io import BytesIO

from PIL import Image, ImageCms

from app.imaging.context import RenderContext
from app.imaging.errors import DECODER_ERRORS

log = logging.getLogger(__name__)

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

_ALPHA_MODES = frozenset({"RGBA", "LA", "La", "PA", "RGBa"})
_HIGH_DEPTH_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_PROFILE_SPACES = {"RGB": "RGB ", "RGBA": "RGB ", "CMYK": "CMYK"}
"""Working mode to the ICC colour space a profile must have to apply to it."""
_PROFILE_ERRORS: tuple[type[BaseException], ...] = (
    ImageCms.PyCMSError,
    *DECODER_ERRORS,
)


def convert_colour(ctx: RenderContext) -> None:
    """Replace ``ctx.frames`` with sRGB frames in mode RGB or RGBA."""
    frames = [_working_mode(frame) for frame in ctx.frames]
    mode = frames[0].mode
    transform = _transform(ctx.icc_profile, mode) if ctx.icc_profile else None
    ctx.frames = [_to_srgb(frame, transform) for frame in frames]
    ctx.icc_profile = None


def _working_mode(frame: Image.Image) -> Image.Image:
    """RGB, RGBA or CMYK: the modes an ICC transform or the encoder takes."""
    mode = frame.mode
    if mode in ("RGB", "RGBA", "CMYK"):
        return frame
    if mode in _HIGH_DEPTH_MODES:
        return _eight_bit_grey(frame).convert("RGB")
    if mode == "LAB":
        return _lab_transform().apply(frame)
    if mode == "P":
        return frame.convert("RGBA" if frame.has_transparency_data else "RGB")
    return frame.convert("RGBA" if mode in _ALPHA_MODES else "RGB")


def _eight_bit_grey(frame: Image.Image) -> Image.Image:
    """Scale 16-bit (or float) grey to 0-255 instead of clipping it."""
    if frame.mode.startswith("I;16"):
        frame = frame.convert("I")
    _, high = frame.getextrema()
    if frame.mode == "F" and isinstance(high, float) and high <= 1.0:
        scale = 255.0
    else:
        scale = 255 / 65535 if isinstance(high, int | float) and high > 255 else 1.0
    return frame.point(lambda value: value * scale).convert("L")


def _to_srgb(
    frame: Image.Image, transform: ImageCms.ImageCmsTransform | None
) -> Image.Image:
    if transform is not None:
        return transform.apply(frame)
    if frame.mode == "CMYK":
        return frame.convert("RGB")
    return frame


@lru_cache(maxsize=32)
def _transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A transform from ``profile`` to sRGB, or ``None`` when none is needed.

    Cached by the profile's bytes: phones embed the same few profiles.
    """
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(profile))
        if source.profile.xcolor_space != _PROFILE_SPACES.get(mode):
            return None
        if _is_srgb(source):
            return None
        return ImageCms.buildTransform(
            source,
            _SRGB,
            mode,
            "RGB" if mode == "CMYK" else mode,
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
        )
    except _PROFILE_ERRORS:
        log.info("Ignoring an embedded ICC profile that cannot be read.")
        return None


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    description = ImageCms.getProfileDescription(profile) or ""
    return description.strip().lower().startswith("srgb")


@lru_cache(maxsize=1)
def _lab_transform() -> ImageCms.ImageCmsTransform:
    lab = ImageCms.createProfile("LAB")
    return ImageCms.buildTransform(lab, _SRGB, "LAB", "RGB")
