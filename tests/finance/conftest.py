"""Fixtures for the finance tests: a fresh database per test on SQLite and on PostgreSQL.

Each PostgreSQL test gets its own database (a copy of a migrated template) on the server
named by ``CHARGEBACK_TEST_POSTGRES_URL``, dropped after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from chargeback_engine.costdb.connection import open_database

POSTGRES_URL = os.environ.get("CHARGEBACK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_available() -> bool:
    try:
        with sa.create_engine(POSTGRES_URL).connect():
            return True
    except sa.exc.OperationalError:
        return False


class PostgresDatabases:
    """Hands each test its own database, a copy of a migrated template.

    One background worker creates the next database while a test runs and drops used ones
    afterwards, because DROP DATABASE forces a checkpoint and is the slowest step.
    """

    def __init__(self, admin: sa.Engine, template: str):
        self.admin, self.template = admin, template
        self.worker = ThreadPoolExecutor(max_workers=1)
        self.upcoming = self.worker.submit(self._create)

    def _create(self) -> str:
        name = f"cb_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def _drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def take(self) -> str:
        name = self.upcoming.result()
        self.upcoming = self.worker.submit(self._create)
        return name

    def release(self, name: str) -> None:
        self.worker.submit(self._drop, name)

    def close(self) -> None:
        self.release(self.upcoming.result())
        self.worker.shutdown(wait=True)
        self._drop(self.template)


def _url(database: str) -> str:
    return sa.make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    if not _postgres_available():
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL}")
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    template = f"cb_template_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{template}"')
    open_database(_url(template)).dispose()
    databases = PostgresDatabases(admin, template)
    yield databases
    databases.close()
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The URL of an empty, migrated cost database of the test's own on the parametrised backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'books.db'}"
        return
    databases = request.getfixturevalue("postgres_databases")
    name = databases.take()
    try:
        yield _url(name)
    finally:
        databases.release(name)


@pytest.fixture
def books(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()
