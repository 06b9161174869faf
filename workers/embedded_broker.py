"""The embedded mode's broker: kombu's SQLAlchemy transport, polled faster.

Kombu's transport looks for new messages once a second, which is most of
the time a small image spends in PENDING on the demo page. This subclass
polls five times a second; each poll is one indexed query on a local SQLite
file. It is registered under the ``sqla`` alias, so ``sqla+sqlite://`` broker
URLs use it in every process that imports :mod:`workers`.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

POLLING_INTERVAL = 0.2
"""Seconds between looks for new messages when the queues are empty."""


class Transport(SQLAlchemyTransport):
    polling_interval = POLLING_INTERVAL


def register() -> None:
    TRANSPORT_ALIASES["sqla"] = f"{__name__}:Transport"
