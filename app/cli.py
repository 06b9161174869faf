"""The ``image-pipeline`` command."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from app.config import ConfigError, Settings

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Turn uploaded images into web-ready media."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _settings() -> Settings:
    try:
        return Settings.from_env().check()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Run the API, a worker and the scheduler together (embedded mode)."""
    import waitress

    from app import create_app
    from app.migrate import upgrade

    settings = _settings()
    app = create_app(settings)
    upgrade(app.extensions["image_pipeline"].db)
    base = f"http://{host}:{port}/image-pipeline"
    click.echo(f"Image pipeline on {base}/  (data in {settings.data_dir})")
    click.echo(
        f"  upload: curl -F file=@photo.jpg -F sourceType=avatar "
        f"-F sourceId=42 {base}/upload"
    )
    with _worker_process(beat=True):
        waitress.serve(app, host=host, port=port, threads=threads, ident=None)


@contextmanager
def _worker_process(beat: bool) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "app", "worker"]
    if beat:
        command.append("--beat")
    worker = subprocess.Popen(command, env=os.environ.copy())
    try:
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


@main.command()
@click.option("--beat", is_flag=True, help="Also run the scheduler in this process.")
@click.option("--concurrency", "-c", type=int, help="Worker processes (default: CPUs).")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(beat: bool, concurrency: int | None, loglevel: str) -> None:
    """Run a Celery worker that processes uploads."""
    argv = ["worker", f"--loglevel={loglevel}", "--without-mingle"]
    if beat:
        argv.append("--beat")
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    _celery().worker_main(argv)


@main.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler: the reaper (and, later, delivery) on their intervals."""
    _celery().start(["beat", f"--loglevel={loglevel}"])


def _celery() -> Any:
    from app import create_app

    return create_app(_settings()).extensions["celery"]


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


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from app.db import Database
    from app.migrate import upgrade

    settings = _settings()
    database = Database(settings.sqlalchemy_url)
    upgrade(database, revision)
    click.echo(f"Database is at revision {revision}.")
