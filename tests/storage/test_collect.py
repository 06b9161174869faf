"""The orphan collector on every backend: it reads ages from the listing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.db import Database
from app.migrate import upgrade
from app.orphans import collect
from app.storage import Storage, original_key, variant_key


@pytest.fixture
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path = tmp_path_factory.mktemp("collect") / "pipeline.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    yield database
    database.dispose()


def test_objects_of_missing_jobs_are_collected_on_every_backend(
    storage: Storage, db: Database
) -> None:
    ghost = str(uuid.uuid4())
    keys = [original_key(ghost), variant_key(ghost, "v1", "sm", "webp")]
    for key in keys:
        storage.put(key, b"x", "application/octet-stream")

    assert collect(db, storage, grace=3600).orphans == 0, "too young to collect"
    later = datetime.now(UTC) + timedelta(hours=2)
    assert collect(db, storage, grace=3600, now=later).orphans == 2
    assert not any(storage.exists(key) for key in keys)
