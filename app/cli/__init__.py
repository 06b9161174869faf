"""The ``image-pipeline`` command.

Commands live by theme: :mod:`app.cli.processes` (serve, worker, beat),
:mod:`app.cli.media` (process, import, reprocess) and
:mod:`app.cli.operations` (db, status, requeue, stats, deliveries, config,
keys). They register on :func:`main` when this package is imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from app.config import ConfigError, Settings
from app.logs import configure_logging

LOG_FORMAT_ENV = "IMAGE_PIPELINE_LOG_FORMAT"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Turn uploaded images into web-ready media."""
    configure_logging(json_lines=os.environ.get(LOG_FORMAT_ENV) == "json")


def _settings() -> Settings:
    try:
        return Settings.from_env().check()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


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


from app.cli import media, operations, processes  # noqa: E402  (they use main)

__all__ = ["main", "media", "operations", "processes"]
