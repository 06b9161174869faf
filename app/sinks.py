"""Sinks: where completed media is delivered.

A sink takes a completed job's record and applies it somewhere the host
application reads: a column of its own table, a webhook, or a Python
callable. Sinks are configured per source type (``"*"`` matches every type)
with ``IMAGE_PIPELINE_SINKS``, for example::

    {"avatar": [{"type": "column", "table": "users", "key": "id",
                 "column": "avatar_url", "variant": "sm"}],
     "*": [{"type": "webhook", "url": "https://app.example.com/hooks/media",
            "secret": "..."}]}

Delivery is at least once, so every sink must be idempotent: applying the
same job twice leaves the same state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from sqlalchemy import Column, MetaData, String, Table, Text, insert, update
from sqlalchemy.exc import IntegrityError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import Database, rowcount
from app.errors import DeliveryError
from app.models import DeliveryMark
from app.records import MediaQueueRecord

Applied = Literal["DELIVERED", "SUPERSEDED"]

SIGNATURE_HEADER = "X-Image-Pipeline-Signature"
TIMESTAMP_HEADER = "X-Image-Pipeline-Timestamp"
DELIVERY_HEADER = "X-Image-Pipeline-Delivery"

DEFAULT_SINKS: dict[str, list[dict[str, Any]]] = {
    "avatar": [{"type": "column"}],
}


class Sink(Protocol):
    name: str

    def deliver(
        self, job: MediaQueueRecord, delivery_id: str, session: Session
    ) -> Applied:
        """Apply ``job``; raise :class:`DeliveryError` to be retried later.

        ``session`` is an open transaction on the pipeline's database that
        commits together with the delivery's new status.
        """
        ...


class SinkConfigError(ValueError):
    """A sink's settings are invalid; the message names the bad value."""


@dataclass
class ColumnSink:
    """Sets ``table.column`` to a variant's URL on the owner's row.

    The row is the one whose ``key`` equals the job's ``sourceId``. Only the
    newest job of an owner is applied: an older job that completes late is
    SUPERSEDED. With ``upsert`` a missing row is created (the embedded demo's
    ``users`` table); otherwise a missing row is left alone. The table lives
    in the pipeline's database unless ``db`` names the host's.
    """

    db: Database | None = None
    table: str = "users"
    key: str = "id"
    column: str = "avatar_url"
    variant: str = "sm"
    upsert: bool = False
    name: str = ""
    _table: Table | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"column:{self.table}.{self.column}"

    def deliver(
        self, job: MediaQueueRecord, delivery_id: str, session: Session
    ) -> Applied:
        if job.media is None or self.variant not in job.media.urls:
            raise DeliveryError(f"The job has no {self.variant!r} variant to deliver.")
        if not _advance_mark(session, self.name, job):
            return "SUPERSEDED"
        url = job.media.urls[self.variant]
        if self.db is None:
            self._write(session, job.source_id, url)
        else:
            with self.db.transaction() as host:
                self._write(host, job.source_id, url)
        return "DELIVERED"

    def _write(self, session: Session, owner: str, url: str) -> None:
        table = self._reflect(session)
        key_column = table.c[self.key]
        owner_value = _cast(key_column.type, owner)
        result = session.execute(
            update(table).where(key_column == owner_value).values({self.column: url})
        )
        if rowcount(result) == 0 and self.upsert:
            session.execute(
                insert(table).values({self.key: owner_value, self.column: url})
            )

    def _reflect(self, session: Session) -> Table:
        if self._table is None:
            try:
                self._table = Table(
                    self.table, MetaData(), autoload_with=session.connection()
                )
            except NoSuchTableError as exc:
                raise DeliveryError(
                    f"The table {self.table!r} does not exist."
                ) from exc
            except SQLAlchemyError as exc:
                raise DeliveryError("The host database is unavailable.") from exc
            for name in (self.key, self.column):
                if name not in self._table.c:
                    self._table = None
                    raise DeliveryError(
                        f"The table {self.table!r} has no column {name!r}."
                    )
        return self._table


def _advance_mark(session: Session, sink: str, job: MediaQueueRecord) -> bool:
    """Record ``job`` as the owner's newest for ``sink``; ``False`` if older.

    Either statement locks the owner's mark until the caller commits, so two
    deliveries for one owner apply one after the other, newest last.
    """
    owner = {"sink": sink, "source_type": job.source_type, "source_id": job.source_id}
    try:
        with session.begin_nested():
            session.execute(
                insert(DeliveryMark).values(
                    **owner, job_created_at=job.created_at, job_id=job.id
                )
            )
        return True
    except IntegrityError:
        pass
    newer_or_same = (DeliveryMark.job_created_at < job.created_at) | (
        (DeliveryMark.job_created_at == job.created_at)
        & (DeliveryMark.job_id <= job.id)
    )
    result = session.execute(
        update(DeliveryMark)
        .where(
            DeliveryMark.sink == sink,
            DeliveryMark.source_type == job.source_type,
            DeliveryMark.source_id == job.source_id,
            newer_or_same,
        )
        .values(job_created_at=job.created_at, job_id=job.id)
    )
    return rowcount(result) == 1


def _cast(column_type: Any, value: str) -> Any:
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return value
    if python_type is int:
        try:
            return int(value)
        except ValueError as exc:
            raise DeliveryError(
                f"sourceId {value!r} is not a whole number, as the key column needs."
            ) from exc
    return value


@dataclass
class WebhookSink:
    """POSTs the job's status JSON, signed with HMAC-SHA256.

    The signature covers ``f"{timestamp}.{body}"``; see :func:`sign`.
    """

    url: str
    secret: str
    timeout: float = 5.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"webhook:{httpx.URL(self.url).host}"

    def deliver(
        self, job: MediaQueueRecord, delivery_id: str, session: Session
    ) -> Applied:
        body = json.dumps(job.to_json(), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "image-pipeline-webhook/1",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            DELIVERY_HEADER: delivery_id,
        }
        try:
            response = httpx.post(
                self.url, content=body, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"The webhook could not be reached ({type(exc).__name__})."
            ) from exc
        if not response.is_success:
            raise DeliveryError(f"The webhook answered HTTP {response.status_code}.")
        return "DELIVERED"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``v1=`` and a hex HMAC-SHA256."""
    message = timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, tolerance: int = 300
) -> bool:
    """Check a delivery as a receiver should: signature and freshness."""
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass
class CallableSink:
    """Calls a function of the host application with the job's record."""

    name: str
    function: Callable[[MediaQueueRecord], object]

    def deliver(
        self, job: MediaQueueRecord, delivery_id: str, session: Session
    ) -> Applied:
        try:
            self.function(job)
        except Exception as exc:
            raise DeliveryError(
                f"The sink {self.name!r} raised {type(exc).__name__}."
            ) from exc
        return "DELIVERED"


def build_sinks(
    config: Mapping[str, Any], webhook_timeout: float
) -> dict[str, list[Sink]]:
    """Sinks by source type from their settings; raises SinkConfigError."""
    sinks: dict[str, list[Sink]] = {}
    for source_type, entries in config.items():
        if not isinstance(entries, list):
            raise SinkConfigError(f"Sinks for {source_type!r} must be a list.")
        sinks[source_type] = [
            _build_sink(source_type, entry, webhook_timeout) for entry in entries
        ]
    return sinks


def _build_sink(source_type: str, entry: Any, webhook_timeout: float) -> Sink:
    if not isinstance(entry, Mapping):
        raise SinkConfigError(f"A sink for {source_type!r} must be an object.")
    settings = dict(entry)
    kind = settings.pop("type", None)
    try:
        if kind == "column":
            url = settings.pop("database_url", None)
            return ColumnSink(db=Database(url) if url else None, **settings)
        if kind == "webhook":
            settings.setdefault("timeout", webhook_timeout)
            return WebhookSink(**settings)
    except TypeError as exc:
        raise SinkConfigError(
            f"A {kind} sink for {source_type!r} has unknown or missing settings "
            f"({exc})."
        ) from exc
    raise SinkConfigError(
        f"Sink type {kind!r} for {source_type!r} is not 'column' or 'webhook'."
    )


def create_example_users_table(db: Database) -> None:
    """The embedded demo's ``users(id, avatar_url)``, which the default sink fills.

    In production the column sink points at the host application's own table.
    """
    table = Table(
        "users",
        MetaData(),
        Column("id", String(255), primary_key=True),
        Column("avatar_url", Text),
    )
    table.create(db.engine, checkfirst=True)
