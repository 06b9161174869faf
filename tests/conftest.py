"""Fixtures: an app from the factory on each database the run can reach.

Every test that takes ``settings`` (or ``app``, ``client``, ``pipeline``)
runs on SQLite, and also on PostgreSQL when ``TEST_DATABASE_URL`` names a
server (``.ci/run`` sets it). Tasks are not sent to a broker here: the
``dispatched`` list records them and ``run_jobs`` runs them the way a worker
does, through the same ``Processor``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.config import Settings
from app.db import Database
from app.extension import ImagePipeline
from app.jobs import JobStore
from app.migrate import upgrade
from tests.apps import MakeApp
from tests.jobstore import Clock

if TYPE_CHECKING:
    from app.processing import Result

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
DATABASES = ["sqlite", "postgresql"] if TEST_DATABASE_URL else ["sqlite"]


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    server = make_url(Settings(database_url=TEST_DATABASE_URL).sqlalchemy_url)
    name = f"image_pipeline_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pipeline.db'}"
    url: str = request.getfixturevalue("postgresql_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in ("media", "media_queue"):
            if conn.dialect.has_table(conn, table):
                conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()
    return url


@pytest.fixture
def clock() -> Clock:
    """A clock for ``JobStore`` that moves only when a test moves it."""
    return Clock()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def jobs(db: Database, clock: Clock) -> JobStore:
    return JobStore(db, clock)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        lease_seconds=30,
        lease_renew_seconds=5,
        soft_time_limit=10,
        hard_time_limit=20,
    ).resolved()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    app.config["TESTING"] = True
    pipeline: ImagePipeline = app.extensions["image_pipeline"]
    upgrade(pipeline.db)
    yield app
    pipeline.db.dispose()


@pytest.fixture
def pipeline(app: Flask) -> ImagePipeline:
    extension: ImagePipeline = app.extensions["image_pipeline"]
    return extension


@pytest.fixture
def dispatched(pipeline: ImagePipeline) -> list[str]:
    """Job ids the pipeline sent to the broker, in order."""
    sent: list[str] = []
    pipeline.dispatch = sent.append
    return sent


@pytest.fixture
def run_jobs(
    pipeline: ImagePipeline, dispatched: list[str]
) -> Callable[[], list[Result]]:
    """Run every dispatched job as a worker would; returns their results."""

    def run() -> list[Result]:
        results = [pipeline.processor.run(job_id) for job_id in dispatched]
        dispatched.clear()
        return results

    return run


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_app(settings: Settings) -> Iterator[MakeApp]:
    """Apps from the factory with settings changed, tasks not sent anywhere.

    ``make_app(authenticate=fn, upload_rate="1/minute")`` builds one with
    those settings replaced; its connections are closed after the test.
    """
    apps: list[Flask] = []

    def make(authenticate: Any = None, **changes: Any) -> Flask:
        app = create_app(replace(settings, **changes), authenticate=authenticate)
        extension: ImagePipeline = app.extensions["image_pipeline"]
        upgrade(extension.db)
        extension.dispatch = _dropped
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["image_pipeline"].db.dispose()


def _dropped(job_id: str) -> None:
    """A dispatcher for tests that run jobs themselves."""
