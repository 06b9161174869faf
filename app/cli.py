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
    from app.sinks import create_example_users_table

    settings = _settings()
    app = create_app(settings)
    pipeline = app.extensions["image_pipeline"]
    upgrade(pipeline.db)
    if settings.embedded_database and not settings.sinks_json:
        create_example_users_table(pipeline.db)
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


@contextmanager
def _app() -> Iterator[Any]:
    """The Flask app for a one-off command; its connections closed at the end."""
    from app import create_app

    app = create_app(_settings())
    try:
        yield app
    finally:
        app.extensions["image_pipeline"].db.dispose()


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
    if not outdated and not media_ids:
        raise click.UsageError("Name media ids, or pass --outdated.")
    with _app() as app:
        _reprocess(app, outdated, source_type, inline, wait, timeout, media_ids)


def _reprocess(
    app: Any,
    outdated: bool,
    source_type: str | None,
    inline: bool,
    wait: bool,
    timeout: float,
    media_ids: tuple[str, ...],
) -> None:
    from app.reprocess import outdated as find_outdated
    from app.reprocess import reprocess
    from workers import REPROCESS_TASK

    pipeline = app.extensions["image_pipeline"]
    targets = list(media_ids) or find_outdated(pipeline, source_type)
    click.echo(f"{len(targets)} media to re-render.")
    if not targets:
        return
    if inline:
        with click.progressbar(targets, label="Re-rendering") as bar:
            outcomes = [reprocess(pipeline, media_id) for media_id in bar]
        click.echo(
            ", ".join(f"{o}: {outcomes.count(o)}" for o in sorted(set(outcomes)))
        )
        return
    celery = app.extensions["celery"]
    for media_id in targets:
        celery.send_task(REPROCESS_TASK, args=[media_id])
    if wait:
        _wait_for_reprocess(pipeline, set(targets), source_type, timeout)


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


@main.group()
def deliveries() -> None:
    """The delivery log: completed jobs handed to sinks."""


@deliveries.command("list")
@click.option(
    "--status", type=click.Choice(["PENDING", "DELIVERED", "SUPERSEDED", "FAILED"])
)
@click.option("--limit", default=50, show_default=True)
def deliveries_list(status: str | None, limit: int) -> None:
    """Show recent deliveries, newest first."""
    from sqlalchemy import select

    from app.models import Delivery

    query = select(Delivery).order_by(Delivery.updated_at.desc()).limit(limit)
    if status:
        query = query.where(Delivery.status == status)
    with _app() as app, app.extensions["image_pipeline"].db.transaction() as session:
        for row in session.scalars(query):
            click.echo(
                f"{row.id}  {row.status:<10} {row.sink:<28} job {row.job_id}  "
                f"attempts {row.attempts}  {row.last_error or ''}".rstrip()
            )


@deliveries.command("replay")
@click.argument("delivery_id")
def deliveries_replay(delivery_id: str) -> None:
    """Send DELIVERY_ID to its sink again on the next delivery cycle."""
    with _app() as app:
        replayed = app.extensions["image_pipeline"].deliverer.replay(delivery_id)
    if not replayed:
        raise click.ClickException(f"No delivery {delivery_id!r}.")
    click.echo(f"Delivery {delivery_id} will be sent again on the next cycle.")
