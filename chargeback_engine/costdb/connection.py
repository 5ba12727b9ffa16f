"""Opening the cost database: URL resolution, migrations, and serialised write transactions.

A SQLite file is the zero-setup default; PostgreSQL is selected with a URL. Every write
goes through :func:`writing`, which serialises writers (``BEGIN IMMEDIATE`` in SQLite, a
transaction-scoped advisory lock in PostgreSQL). That one rule is what makes run keys
idempotent under concurrency and keeps the audit chain a single line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

import sqlalchemy as sa

from chargeback_engine.logs import get_logger

DEFAULT_URL = "sqlite:///chargeback.db"
ENV_VAR = "CHARGEBACK_DB"
_WRITE_LOCK = 0x43424B46  # "CBKF": the advisory lock id of cost-database writes

log = get_logger(__name__)


def database_url(explicit: str | None = None) -> str:
    """``--db`` wins, then ``CHARGEBACK_DB``, then ``chargeback.db`` in the working directory."""
    return explicit or os.environ.get(ENV_VAR) or DEFAULT_URL


def missing_sqlite_file(url: str | None = None) -> str | None:
    """The path of a SQLite database file that does not exist yet, else None.

    Opening a SQLite URL creates the file, so commands that only read check this first
    and never leave an empty ``chargeback.db`` behind.
    """
    parsed = sa.engine.make_url(database_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return None if os.path.exists(parsed.database) else parsed.database


def _sqlite_serialised(engine: sa.Engine) -> None:
    """Make pysqlite emit ``BEGIN IMMEDIATE`` so that a write transaction holds the lock from its start."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str | None = None) -> sa.Engine:
    """An engine for the cost database, without touching its schema."""
    resolved = database_url(url)
    if resolved.startswith("sqlite"):
        engine = sa.create_engine(resolved, connect_args={"timeout": 60})
        _sqlite_serialised(engine)
        return engine
    return sa.create_engine(resolved, pool_pre_ping=True)


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision with the migrations shipped in this package.

    Alembic is imported here, not at module import: it attaches a handler to its logger,
    and importing the library (or the CLI) must leave logging untouched.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("chargeback_engine.costdb") / "migrations"))
    with writing(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.debug("costdb.migrated", url=engine.url.render_as_string(hide_password=True))


def open_database(url: str | None = None) -> sa.Engine:
    """Open (and create or upgrade) the cost database at ``url``."""
    engine = create_engine(url)
    migrate(engine)
    return engine


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One serialised write transaction: committed on success, rolled back on any error."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITE_LOCK})
        yield connection
