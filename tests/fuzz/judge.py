"""What every input must come to: a rendering or a rejection with a known code."""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.errors import REJECTION_CODES, ImageRejected
from app.imaging import Rendered, render
from app.presets import Preset, build_presets

PRESETS = build_presets(None)
DEFAULT: Preset = PRESETS["default"]
AVATAR: Preset = PRESETS["avatar"]

RENDERED = "rendered"
PER_INPUT_SECONDS = 10.0
"""A bound on one render of a small mutated file; real ones take milliseconds."""


class UnknownRejection(AssertionError):
    """A rejection whose code is not one of the documented ones."""


@dataclass(frozen=True)
class Verdict:
    outcome: str
    """``rendered`` or the rejection's code."""
    seconds: float


def judge(data: bytes, preset: Preset) -> Verdict:
    """Render ``data``; any exception other than a known rejection escapes."""
    started = time.perf_counter()
    try:
        rendered = render(data, preset)
    except ImageRejected as rejection:
        if rejection.code not in REJECTION_CODES:
            raise UnknownRejection(rejection.code) from rejection
        outcome = rejection.code
    else:
        check_rendered(rendered, preset)
        outcome = RENDERED
    return Verdict(outcome, time.perf_counter() - started)


def check_rendered(rendered: Rendered, preset: Preset) -> None:
    names = [variant.name for variant in rendered.variants]
    assert names == [spec.name for spec in preset.variants]
    for variant in rendered.variants:
        assert variant.data[:4] == b"RIFF" and variant.data[8:12] == b"WEBP"
        assert 1 <= variant.width <= 16383 and 1 <= variant.height <= 16383
    assert rendered.width >= 1 and rendered.height >= 1
