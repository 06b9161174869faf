"""Running the service: ``serve`` (all in one), ``worker`` and ``beat``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from app.cli import _celery, _settings, main

log = logging.getLogger(__name__)


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
    """Run the scheduler: the reaper, delivery and collection on their intervals."""
    _celery().start(["beat", f"--loglevel={loglevel}"])
