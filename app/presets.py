"""Presets: which variants a source type gets, and how they are encoded.

A preset is plain data. ``fit="width"`` scales the image to each variant's
width keeping its aspect ratio; ``fit="cover"`` crops a square of the
variant's width. No variant is ever larger than the upright original.

Presets are configured as a mapping from source type to settings, for example::

    {"gallery": {"fit": "width", "variants": {"sm": 480, "lg": 1600},
                 "quality": 75}}

A source type without a preset of its own uses ``default``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Fit = Literal["width", "cover"]
FITS: tuple[Fit, ...] = ("width", "cover")
FORMATS = ("webp",)


@dataclass(frozen=True)
class VariantSpec:
    """One output of a preset: ``name`` and its target width in pixels."""

    name: str
    width: int


@dataclass(frozen=True)
class Preset:
    name: str
    variants: tuple[VariantSpec, ...]
    fit: Fit = "width"
    format: str = "webp"
    quality: int = 80
    animated: bool = True
    """Keep animation in the variants; ``False`` renders the first frame."""
    version: str = field(default="", compare=False)
    """Short digest of the settings; changes whenever a setting does."""

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", self._digest())

    @property
    def largest_width(self) -> int:
        return max(v.width for v in self.variants)

    def _digest(self) -> str:
        settings = {
            "variants": [(v.name, v.width) for v in self.variants],
            "fit": self.fit,
            "format": self.format,
            "quality": self.quality,
            "animated": self.animated,
        }
        encoded = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:12]


DEFAULT_PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "fit": "width",
        "variants": {"sm": 320, "md": 768, "lg": 1280, "xl": 1920},
        "quality": 80,
    },
    "avatar": {
        "fit": "cover",
        "variants": {"xs": 64, "sm": 128, "md": 256, "lg": 512},
        "quality": 80,
        "animated": False,
    },
}


class PresetError(ValueError):
    """A preset's settings are invalid; the message names the bad value."""


def build_preset(name: str, settings: Mapping[str, Any]) -> Preset:
    """Validate one preset's settings and build it."""
    if not isinstance(settings, Mapping):
        raise PresetError(f"Preset {name!r} must be an object of settings.")
    unknown = set(settings) - {"fit", "variants", "format", "quality", "animated"}
    if unknown:
        raise PresetError(f"Preset {name!r} has unknown settings {sorted(unknown)}.")
    variants = settings.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        raise PresetError(
            f"Preset {name!r} needs 'variants', a mapping of name to width."
        )
    specs = []
    for variant, width in variants.items():
        if not isinstance(width, int) or isinstance(width, bool) or not width >= 1:
            raise PresetError(
                f"Preset {name!r}: variant {variant!r} has width {width!r}; "
                "use a positive whole number of pixels."
            )
        specs.append(VariantSpec(str(variant), width))
    fit = settings.get("fit", "width")
    if fit not in FITS:
        raise PresetError(f"Preset {name!r}: fit {fit!r} is not one of {FITS}.")
    fmt = settings.get("format", "webp")
    if fmt not in FORMATS:
        raise PresetError(f"Preset {name!r}: format {fmt!r} is not one of {FORMATS}.")
    quality = settings.get("quality", 80)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise PresetError(
            f"Preset {name!r}: quality {quality!r} must be a whole number 1-100."
        )
    specs.sort(key=lambda spec: spec.width)
    return Preset(
        name=name,
        variants=tuple(specs),
        fit=fit,
        format=fmt,
        quality=quality,
        animated=bool(settings.get("animated", True)),
    )


def build_presets(
    overrides: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Preset]:
    """The default presets, with ``overrides`` replacing or adding presets."""
    merged = {**DEFAULT_PRESETS, **(overrides or {})}
    return {name: build_preset(name, settings) for name, settings in merged.items()}


def preset_for(presets: Mapping[str, Preset], source_type: str) -> Preset:
    return presets.get(source_type) or presets["default"]
