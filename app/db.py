"""Database engine and sessions, and the one place database errors are mapped.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the API,
the worker and beat can share one file. Every failure to reach or use the
database surfaces as :class:`app.errors.DatabaseUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 starts transactions itself, only before writes and
        # never for SAVEPOINT, which breaks nested transactions and lets a
        # read-then-write race. They are begun below instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock at the start, so two transactions
        # that read and then write queue up (busy timeout) instead of one
        # failing at once as "database is locked". Every transaction, reads
        # included, waits for the one writing; they are all short.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (SQLAlchemy types it loosely)."""
    return int(result.rowcount)


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction, committed on success.

        Connection-level failures become ``DatabaseUnavailable``.
        """
        try:
            with self.sessions.begin() as session:
                yield session
        except (OperationalError, TimeoutError) as exc:
            raise DatabaseUnavailable("The database is unavailable.") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailable("The database connection was lost.") from exc
            raise

    def dispose(self) -> None:
        self.engine.dispose()
