"""Fixtures for the finance tests: a fresh database per test on SQLite and on PostgreSQL.

PostgreSQL tests create their own database on the server named by
``CHARGEBACK_TEST_POSTGRES_URL`` and drop it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from chargeback_engine.finance.db import open_database
from tests.finance.builders import ledger_table  # noqa: F401  (re-exported for tests)

POSTGRES_URL = os.environ.get("CHARGEBACK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_available() -> bool:
    try:
        with sa.create_engine(POSTGRES_URL).connect():
            return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[sa.Engine, str, ThreadPoolExecutor]]:
    """A migrated template database; each test copies it (much faster than migrating again)."""
    if not _postgres_available():
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL}")
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    template = f"cb_template_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{template}"')
    dropper = ThreadPoolExecutor(max_workers=1)  # drops run beside the next tests, not before them
    try:
        open_database(_url(template)).dispose()
        yield admin, template, dropper
    finally:
        dropper.shutdown(wait=True)
        _drop(admin, template)
        admin.dispose()


def _url(database: str) -> str:
    return sa.make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


def _drop(admin: sa.Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The URL of an empty, migrated cost database on the parametrised backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'books.db'}"
        return
    admin, template, dropper = request.getfixturevalue("postgres_template")
    name = f"cb_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _url(name)
    finally:
        dropper.submit(_drop, admin, name)


@pytest.fixture
def books(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()
