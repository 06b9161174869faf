"""Working on images from the command line: ``process``, ``import``, ``reprocess``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from app.cli import _app, _settings, main


@main.command()
@click.option("--preset", "preset_name", default="default", show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
def process(preset_name: str, out_dir: Path, files: tuple[Path, ...]) -> None:
    """Process local FILES as the workers do; one JSON line per file.

    Exits 1 when any file was rejected or unreadable.
    """
    from app.errors import ImageRejected
    from app.imaging import render

    settings = _settings()
    presets = settings.presets()
    if preset_name not in presets:
        raise click.BadParameter(
            f"{preset_name!r} is not a preset; choose from {sorted(presets)}.",
            param_hint="--preset",
        )
    preset = presets[preset_name]
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for path in files:
        try:
            rendered = render(path, preset, settings.limits)
        except ImageRejected as exc:
            failed = True
            line = {"file": str(path), "status": "REJECTED", **exc.to_json()}
        except OSError as exc:
            failed = True
            line = {"file": str(path), "status": "ERROR", "error": str(exc.strerror)}
        else:
            line = _write_variants(path, out_dir, rendered)
        click.echo(json.dumps(line))
    if failed:
        sys.exit(1)


def _write_variants(path: Path, out_dir: Path, rendered: Any) -> dict[str, Any]:
    variants = []
    for variant in rendered.variants:
        target = out_dir / f"{path.stem}.{variant.name}.{variant.format}"
        target.write_bytes(variant.data)
        variants.append(
            {
                "name": variant.name,
                "path": str(target),
                "width": variant.width,
                "height": variant.height,
                "format": variant.format,
                "bytes": variant.bytes,
            }
        )
    return {
        "file": str(path),
        "status": "COMPLETE",
        "width": rendered.width,
        "height": rendered.height,
        "originalFormat": rendered.original_format,
        "blurhash": rendered.blurhash,
        "dominantColor": rendered.dominant_color,
        "variants": variants,
    }


@main.command("reprocess")
@click.option("--outdated", is_flag=True, help="Every media made by an older preset.")
@click.option("--source-type", help="Only media of this source type.")
@click.option(
    "--inline",
    is_flag=True,
    help="Render here, one by one, instead of sending Celery jobs.",
)
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait.")
@click.argument("media_ids", nargs=-1)
def reprocess_command(
    outdated: bool,
    source_type: str | None,
    inline: bool,
    wait: bool,
    timeout: float,
    media_ids: tuple[str, ...],
) -> None:
    """Re-render MEDIA_IDS, or with --outdated all media of a changed preset.

    Safe to interrupt and run again: finished media are no longer outdated.
    """
    from app.reprocess import outdated as find_outdated
    from workers import REPROCESS_TASK

    if not outdated and not media_ids:
        raise click.UsageError("Name media ids, or pass --outdated.")
    with _app() as app:
        pipeline = app.extensions["image_pipeline"]
        targets = list(media_ids) or find_outdated(pipeline, source_type)
        click.echo(f"{len(targets)} media to re-render.")
        if not targets:
            return
        if inline:
            _reprocess_here(pipeline, targets)
            return
        for media_id in targets:
            app.extensions["celery"].send_task(REPROCESS_TASK, args=[media_id])
        if wait:
            _wait_for_reprocess(pipeline, set(targets), source_type, timeout)


def _reprocess_here(pipeline: Any, targets: list[str]) -> None:
    from app.reprocess import reprocess

    with click.progressbar(targets, label="Re-rendering") as bar:
        outcomes = [reprocess(pipeline, media_id) for media_id in bar]
    click.echo(", ".join(f"{o}: {outcomes.count(o)}" for o in sorted(set(outcomes))))


def _wait_for_reprocess(
    pipeline: Any, targets: set[str], source_type: str | None, timeout: float
) -> None:
    import time

    from app.reprocess import outdated as find_outdated

    deadline = time.monotonic() + timeout
    finished = 0
    with click.progressbar(length=len(targets), label="Re-rendering") as bar:
        while finished < len(targets) and time.monotonic() < deadline:
            time.sleep(1)
            now_finished = len(targets - set(find_outdated(pipeline, source_type)))
            bar.update(now_finished - finished)
            finished = now_finished
    if finished < len(targets):
        raise click.ClickException(
            f"{len(targets) - finished} media still outdated after {timeout:.0f} s; "
            "see the worker log, and run the command again to resume."
        )


@main.command("import")
@click.argument(
    "directory", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--source-type", required=True, help="The source type of every image.")
@click.option(
    "--source-id-from",
    default="filename",
    show_default=True,
    metavar="filename|ID",
    help="'filename': each file's name without extension; anything else: that "
    "one source id for all.",
)
def import_command(directory: Path, source_type: str, source_id_from: str) -> None:
    """Upload every file in DIRECTORY (not its subfolders) as new jobs.

    Each file is checked as an upload is; refused files are listed with the
    reason, and the command exits 1 if any was refused.
    """
    from app.errors import PipelineError

    files = sorted(path for path in directory.iterdir() if path.is_file())
    refused: list[tuple[Path, str]] = []
    with _app() as app:
        pipeline = app.extensions["image_pipeline"]
        with click.progressbar(files, label="Importing") as bar:
            for path in bar:
                source_id = (
                    path.stem if source_id_from == "filename" else source_id_from
                )
                try:
                    pipeline.submit(path, source_type, source_id)
                except PipelineError as exc:
                    refused.append((path, exc.message))
    click.echo(f"{len(files) - len(refused)} accepted, {len(refused)} refused.")
    for path, reason in refused:
        click.echo(f"  {path.name}: {reason}")
    if refused:
        sys.exit(1)
