"""Schema migrations (Alembic), run by ``image-pipeline db upgrade``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from app.db import Database


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", "app:migrations")
    config.set_main_option("sqlalchemy.url", db.engine.url.render_as_string(False))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    with db.engine.begin() as connection:
        config = alembic_config(db)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
