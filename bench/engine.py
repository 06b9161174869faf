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
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    corpus = Path(os.environ.get("IMAGE_PIPELINE_CORPUS", ROOT.parent / "shared/corpus"))
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


def run_naive(paths: Sequence[Path]) -> None:
    """What a first attempt looks like: every variant from the full image."""
    import blurhash
    from PIL import Image, ImageOps

    for path in paths:
        with Image.open(path) as opened:
            full = ImageOps.exif_transpose(opened).convert("RGB")
        for width in WIDTHS:
            height = round(full.height * width / full.width)
            variant = full.resize((width, height), Image.Resampling.LANCZOS)
            variant.save(_Sink(), "WEBP", quality=QUALITY)
        blurhash.encode(full, 4, 3)


def run_libvips(paths: Sequence[Path]) -> None:
    """libvips used well: shrink-on-load, each size from the one above."""
    import blurhash
    import pyvips
    from PIL import Image

    for path in paths:
        largest = pyvips.Image.thumbnail(str(path), max(WIDTHS), size="down")
        largest = largest.copy_memory()  # decoded once, read by every output
        current = largest
        for width in sorted(WIDTHS, reverse=True):
            if width < current.width:
                current = current.resize(width / current.width, kernel="lanczos3")
            current.webpsave_buffer(Q=QUALITY, keep=pyvips.enums.ForeignKeep.NONE)
        thumb = largest.thumbnail_image(64)
        pixels = thumb.write_to_memory()
        image = Image.frombytes("RGB", (thumb.width, thumb.height), pixels)
        blurhash.encode(image, 4, 3)


class _Sink:
    """A write-only file that keeps nothing, so encoded bytes cost no memory."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return None


CONTENDERS: dict[str, Callable[[Sequence[Path]], None]] = {
    "engine": run_engine,
    "naive": run_naive,
    "libvips": run_libvips,
}


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
    rows.append(f"naive / engine wall time: {naive.per_file / engine.per_file:.1f}x")
    rows.append(f"engine / libvips peak memory: {engine.peak_mib / vips.peak_mib:.2f}x")
    if naive.files != files:
        rows.append(
            f"\n*naive timed on {naive.files} of the {files} files, scaled to {files}."
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
    results = {
        "engine": measure("engine", paths),
        "libvips": measure("libvips", paths),
        "naive": measure("naive", paths[:NAIVE_FILES]),
    }
    print(table(results, len(paths)))


if __name__ == "__main__":
    main()
