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
from app.logs import configure_logging

LOG_FORMAT_ENV = "IMAGE_PIPELINE_LOG_FORMAT"

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Turn uploaded images into web-ready media."""
    configure_logging(json_lines=os.environ.get(LOG_FORMAT_ENV) == "json")


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
    from app.wire import waitress_options

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
    # SIGTERM ends serve like Ctrl-C does, so the worker is stopped with it.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with _worker_process(beat=True):
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            ident=None,
            **waitress_options(settings),
        )


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


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
@click.option(
    "--queues",
    "-Q",
    help="Comma-separated queues to consume (default: all): image-pipeline, "
    "image-pipeline-heavy, image-pipeline.control.",
)
@click.option(
    "--autoscale",
    metavar="MAX,MIN",
    help="Grow to MAX worker processes under load, shrink to MIN when idle.",
)
@click.option(
    "--hostname",
    "-n",
    help="Node name, unique per worker on a machine (default: celery@HOST).",
)
@click.option(
    "--metrics-port",
    type=int,
    help="Serve this worker's Prometheus metrics on this port.",
)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(
    beat: bool,
    concurrency: int | None,
    queues: str | None,
    autoscale: str | None,
    hostname: str | None,
    metrics_port: int | None,
    loglevel: str,
) -> None:
    """Run a Celery worker that processes uploads."""
    argv = ["worker", f"--loglevel={loglevel}", "--without-mingle"]
    if beat:
        argv.append("--beat")
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    for flag, value in (
        ("queues", queues),
        ("autoscale", autoscale),
        ("hostname", hostname),
    ):
        if value:
            argv.append(f"--{flag}={value}")
    if metrics_port is not None:
        _serve_worker_metrics(metrics_port)
    _celery().worker_main(argv)


def _serve_worker_metrics(port: int) -> None:
    """Export the pool's metrics from this, the worker's parent, process.

    The pool's children write their values to a multiprocess directory; it
    must be chosen before anything imports prometheus_client, so this runs
    before the app is built.
    """
    import tempfile

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = tempfile.mkdtemp(prefix="image-pipeline-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import start_http_server

    from app.metrics import process_registry

    start_http_server(port, registry=process_registry())
    log.info("worker metrics on :%d (multiprocess directory %s)", port, directory)


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


@main.command()
@click.argument("job_id")
def status(job_id: str) -> None:
    """Print JOB_ID's status as JSON, the body of GET /status/<jobId>."""
    with _app() as app:
        record = app.extensions["image_pipeline"].get_status(job_id)
    if record is None:
        raise click.ClickException(f"No job {job_id!r}.")
    click.echo(json.dumps(record.to_json(), indent=2))


@main.command()
@click.option("--failed", is_flag=True, help="Every FAILED job.")
@click.option(
    "--stuck",
    is_flag=True,
    help="Jobs PROCESSING past their lease, or PENDING past the pending grace.",
)
@click.argument("job_ids", nargs=-1)
def requeue(failed: bool, stuck: bool, job_ids: tuple[str, ...]) -> None:
    """Put FAILED or stuck jobs back to PENDING, attempts reset, and send them.

    COMPLETE and REJECTED jobs are refused (exit 1): they are final.
    """
    from app.stats import requeue_candidates

    if not (failed or stuck or job_ids):
        raise click.UsageError("Name job ids, or pass --failed and/or --stuck.")
    with _app() as app:
        pipeline = app.extensions["image_pipeline"]
        grace = pipeline.settings.pending_grace
        targets = list(job_ids) + requeue_candidates(
            pipeline.db, failed=failed, stuck=stuck, stuck_after=grace
        )
        refused = []
        for job_id in dict.fromkeys(targets):
            if pipeline.jobs.requeue(job_id, stuck_after=grace):
                pipeline.dispatch(job_id)
                click.echo(f"{job_id} requeued")
            else:
                refused.append(job_id)
    for job_id in refused:
        click.echo(
            f"{job_id} refused: only FAILED or stuck jobs can be requeued.", err=True
        )
    if refused:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead.")
def stats(as_json: bool) -> None:
    """Jobs by status, the queue depth and the oldest PENDING job's age."""
    from app.stats import job_stats

    with _app() as app:
        result = job_stats(app.extensions["image_pipeline"].db)
    counts = result.by_status()
    summary = {
        "jobs": counts,
        "queueDepth": result.queue_depth,
        "oldestPendingAgeSeconds": result.oldest_pending_age,
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    for name, count in counts.items():
        click.echo(f"{name:<12}{count:>8}")
    click.echo(f"{'queue depth':<12}{result.queue_depth:>8}")
    age = result.oldest_pending_age
    click.echo("oldest pending: " + ("none" if age is None else f"{age:.0f} s"))


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
def config_check() -> None:
    """Validate the environment; print every problem, then the settings.

    Exits 1 when any setting is invalid. Passwords in URLs and secrets in
    sink settings are masked.
    """
    from app.config import describe_values

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = settings.problems()
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    click.echo("Configuration is valid.")
    for env, value in describe_values(settings):
        click.echo(f"{env}={value}")


@config.command("docs")
def config_docs() -> None:
    """Print the settings as a Markdown table, from their definitions."""
    from app.config import describe

    click.echo("| variable | default | meaning |")
    click.echo("|---|---|---|")
    for env, default, doc in describe():
        shown = "unset" if default in ("''", '""') else f"`{default}`"
        escaped = doc.replace("|", r"\|")
        click.echo(f"| `{env}` | {shown} | {escaped} |")


@main.group()
def keys() -> None:
    """API keys for IMAGE_PIPELINE_AUTH=api-key."""


@keys.command("new")
@click.argument("principal")
def keys_new(principal: str) -> None:
    """Make a key for PRINCIPAL: give the key to the client, the entry to config."""
    from app.security import hash_key, new_key, parse_api_keys

    if ":" in principal or "," in principal or not principal.strip():
        raise click.BadParameter(
            "use a name without ':' or ','.", param_hint="PRINCIPAL"
        )
    key = new_key()
    entry = f"{principal}:{hash_key(key)}"
    parse_api_keys(entry)
    click.echo(f"key (give to the client, shown once): {key}")
    click.echo(f"add to IMAGE_PIPELINE_API_KEYS:       {entry}")
