"""Time the engine against a naive Pillow pipeline and a skilled libvips one.

    python bench/engine.py [FILE ...]

With no files, six uses of the corpus's 12-megapixel phone photo are timed;
the corpus is found through ``IMAGE_PIPELINE_CORPUS`` (default
``../shared/corpus`` next to the project). ``--mixed`` uses the 12, 9 and 8
megapixel photos twice each instead. Every contender runs in a child process
of its own, so that its peak memory (``ru_maxrss``) is its own, and all of
them see the same files in the same order. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTHS = (320, 768, 1280, 1920)
QUALITY = 80
NAIVE_FILES = 2
"""The naive run takes this many of the files; its time is scaled up."""


@dataclass(frozen=True)
class Result:
    name: str
    files: int
    seconds: float
    peak_mib: float

    @property
    def per_file(self) -> float:
        return self.seconds / self.files


def default_files(mixed: bool) -> list[Path]:
    corpus = Path(
        os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared/corpus")
    )
    photos = corpus / "photos"
    if mixed:
        names = ["phone-12mp-4032x3024.jpg", "phone-9mp-4608x1976.jpg"]
        names.append("phone-8mp-3264x2448.jpg")
        return [photos / name for name in names * 2]
    return [photos / "phone-12mp-4032x3024.jpg"] * 6


def run_engine(paths: Sequence[Path]) -> None:
    from app.imaging import render
    from app.presets import build_presets

    preset = build_presets(None)["default"]
    for path in paths:
        render(path, preset)


def run_naive(paths: Sequence[Path], small_blurhash: bool = False) -> None:
    """What a first attempt looks like: every variant from the full image.

    With ``small_blurhash`` the BlurHash comes from a 64 px thumbnail, which
    shows how much of the naive time the full-size BlurHash alone costs.
    """
    from PIL import Image, ImageOps

    for path in paths:
        with Image.open(path) as opened:
            full = ImageOps.exif_transpose(opened).convert("RGB")
        for width in WIDTHS:
            height = round(full.height * width / full.width)
            variant = full.resize((width, height), Image.Resampling.LANCZOS)
            variant.save(io.BytesIO(), "WEBP", quality=QUALITY)
        if small_blurhash:
            full.thumbnail((64, 64))
        _blurhash(full)


def _blurhash(image: Image.Image) -> str:
    import blurhash

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Image.getdata
        return str(blurhash.encode(image, 4, 3))


def run_naive_small_blurhash(paths: Sequence[Path]) -> None:
    run_naive(paths, small_blurhash=True)


def run_libvips(paths: Sequence[Path], effort: int = 4) -> None:
    """libvips used well: shrink-on-load, each size from the one above.

    ``effort`` 4 is libvips' default; 2 matches the engine's WebP method.
    """
    import pyvips
    from PIL import Image

    for path in paths:
        largest = pyvips.Image.thumbnail(str(path), max(WIDTHS), size="down")
        largest = largest.copy_memory()  # decoded once, read by every output
        current = largest
        for width in sorted(WIDTHS, reverse=True):
            if width < current.width:
                current = current.resize(width / current.width, kernel="lanczos3")
            current.webpsave_buffer(
                Q=QUALITY, effort=effort, keep=pyvips.enums.ForeignKeep.NONE
            )
        thumb = largest.thumbnail_image(64)
        pixels = thumb.write_to_memory()
        image = Image.frombytes("RGB", (thumb.width, thumb.height), pixels)
        _blurhash(image)


def run_libvips_effort_2(paths: Sequence[Path]) -> None:
    run_libvips(paths, effort=2)


CONTENDERS: dict[str, Callable[[Sequence[Path]], None]] = {
    "engine": run_engine,
    "libvips": run_libvips,
    "libvips effort 2": run_libvips_effort_2,
    "naive": run_naive,
    "naive, 64 px BlurHash": run_naive_small_blurhash,
}
ROUNDS = 3
"""Each fast contender runs this many times, interleaved; the median counts."""


def child(name: str, paths: Sequence[Path]) -> None:
    """Run one contender and print its time and peak memory as JSON."""
    started = time.perf_counter()
    CONTENDERS[name](paths)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024}))


def measure(name: str, paths: Sequence[Path]) -> Result:
    command = [sys.executable, __file__, "--child", name, *map(str, paths)]
    output = subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(output.stdout.strip().splitlines()[-1])
    return Result(name, len(paths), report["seconds"], report["peak_mib"])


def median(results: list[Result]) -> Result:
    ordered = sorted(results, key=lambda result: result.seconds)
    middle = ordered[len(ordered) // 2]
    peak = max(result.peak_mib for result in results)
    return Result(middle.name, middle.files, middle.seconds, peak)


def measure_all(paths: Sequence[Path]) -> dict[str, Result]:
    """Interleave the rounds so that a busy moment hurts every contender alike."""
    fast = [name for name in CONTENDERS if not name.startswith("naive")]
    runs: dict[str, list[Result]] = {name: [] for name in fast}
    for _ in range(ROUNDS):
        for name in fast:
            runs[name].append(measure(name, paths))
    results = {name: median(found) for name, found in runs.items()}
    for name in CONTENDERS:
        if name.startswith("naive"):
            results[name] = measure(name, paths[:NAIVE_FILES])
    return results


def table(results: dict[str, Result], files: int) -> str:
    engine, naive, vips = results["engine"], results["naive"], results["libvips"]
    rows = [
        "| pipeline | files timed | wall time (s) | per file (ms) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results.values():
        total = result.per_file * files
        rows.append(
            f"| {result.name} | {result.files} | {total:.2f}"
            f"{'*' if result.files != files else ''} | {result.per_file * 1000:.0f} "
            f"| {result.peak_mib:.0f} |"
        )
    rows.append("")
    rows.append(f"engine / libvips wall time: {engine.per_file / vips.per_file:.2f}x")
    fair = results["libvips effort 2"]
    rows.append(
        f"engine / libvips effort 2 wall time: {engine.per_file / fair.per_file:.2f}x"
    )
    rows.append(f"naive / engine wall time: {naive.per_file / engine.per_file:.1f}x")
    small = results["naive, 64 px BlurHash"]
    rows.append(
        f"naive with a 64 px BlurHash / engine: {small.per_file / engine.per_file:.1f}x"
    )
    rows.append(f"engine / libvips peak memory: {engine.peak_mib / vips.peak_mib:.2f}x")
    rows.append(
        f"\nMedian of {ROUNDS} interleaved runs; peak RSS is the highest of them."
    )
    if naive.files != files:
        rows.append(
            f"*naive rows timed once on {naive.files} of the {files} files, "
            f"scaled to {files}."
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--mixed", action="store_true")
    parser.add_argument("--child", choices=sorted(CONTENDERS))
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.files)
        return
    paths = args.files or default_files(args.mixed)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        parser.error(f"These files do not exist: {', '.join(missing)}.")
    print(table(measure_all(paths), len(paths)))


if __name__ == "__main__":
    main()
