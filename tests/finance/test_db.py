"""The cost database: migrations, exact money on both backends, append-only tables."""

from __future__ import annotations

from decimal import Decimal
from importlib.resources import files

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects import postgresql, sqlite

from chargeback_engine.costdb.connection import database_url, open_database
from chargeback_engine.costdb.tables import APPEND_ONLY_TABLES, Money, metadata
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE


def test_migrations_match_the_tables_and_reopening_is_harmless(db_url: str) -> None:
    for _ in range(2):
        engine = open_database(db_url)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
            assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0004"
        engine.dispose()


def test_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARGEBACK_DB", raising=False)
    assert database_url(None) == "sqlite:///chargeback.db"
    monkeypatch.setenv("CHARGEBACK_DB", "postgresql+psycopg://x@h/db")
    assert database_url(None) == "postgresql+psycopg://x@h/db"
    assert database_url("sqlite:///other.db") == "sqlite:///other.db"


# The smallest and the largest amounts numeric(38, LEDGER_SCALE) holds, whatever the scale.
LARGEST = Decimal(f"{'9' * (38 - LEDGER_SCALE)}.{'9' * LEDGER_SCALE}")
AMOUNTS = [
    LEDGER_QUANTUM,
    -LEDGER_QUANTUM,
    LARGEST,
    LARGEST.copy_negate(),
    Decimal("0.1") + Decimal("0.2"),
    Decimal("-42.5"),
]


def test_money_is_exact_on_both_backends(books: sa.Engine) -> None:
    probe = sa.Table(
        "money_probe", sa.MetaData(), sa.Column("i", sa.Integer, primary_key=True), sa.Column("amount", Money)
    )
    probe.create(books)
    with books.begin() as connection:
        connection.execute(probe.insert(), [{"i": i, "amount": a} for i, a in enumerate(AMOUNTS)])
        back = connection.execute(sa.select(probe.c.amount).order_by(probe.c.i)).scalars().all()
        if books.dialect.name == "sqlite":
            assert connection.execute(sa.text("SELECT DISTINCT typeof(amount) FROM money_probe")).scalars().all() == [
                "text"
            ]
        else:
            column_type = connection.execute(
                sa.text(
                    "SELECT numeric_precision, numeric_scale FROM information_schema.columns "
                    "WHERE table_name = 'ledger_lines' AND column_name = 'amount'"
                )
            ).one()
            assert tuple(column_type) == (38, LEDGER_SCALE)
    assert back == AMOUNTS


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_money_refuses_to_round(dialect: sa.Dialect) -> None:
    with pytest.raises(ValueError, match=f"more than {LEDGER_SCALE} digits"):
        Money().process_bind_param(LEDGER_QUANTUM / 10, dialect)


def test_update_delete_and_truncate_are_refused_on_every_table(books: sa.Engine) -> None:
    with books.begin() as connection:
        for table in APPEND_ONLY_TABLES:
            _insert_one(connection, table)
    for table in APPEND_ONLY_TABLES:
        column = next(iter(metadata.tables[table].columns)).name
        for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"):
            with pytest.raises(sa.exc.DBAPIError, match=f"{table} is append-only"):
                with books.begin() as connection:
                    connection.execute(sa.text(statement))
    if books.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with books.begin() as connection:
                connection.execute(sa.text("TRUNCATE audit_records"))
        with books.connect() as connection:
            public = connection.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = 'PUBLIC' "
                    "AND table_schema = 'public' AND privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')"
                )
            ).scalar()
        assert public == 0


def test_replace_and_upsert_cannot_rewrite_a_row_of_any_table(books: sa.Engine) -> None:
    """SQLite's REPLACE deletes the row in its way without firing DELETE triggers; an UPSERT updates it."""
    with books.begin() as connection:
        for table in APPEND_ONLY_TABLES:
            _insert_one(connection, table)
    for table in APPEND_ONLY_TABLES:
        key = ", ".join(column.name for column in metadata.tables[table].primary_key.columns)
        first = key.split(", ")[0]
        rewrites = [
            f"INSERT INTO {table} SELECT * FROM {table} WHERE true "
            f"ON CONFLICT ({key}) DO UPDATE SET {first} = excluded.{first}"
        ]
        if books.dialect.name == "sqlite":
            rewrites += [
                f"INSERT OR REPLACE INTO {table} SELECT * FROM {table}",
                f"REPLACE INTO {table} SELECT * FROM {table}",
            ]
        for statement in rewrites:
            with pytest.raises(sa.exc.DBAPIError, match=f"{table} is append-only"):
                with books.begin() as connection:
                    connection.execute(sa.text(statement))


def _insert_one(connection: sa.Connection, table: str) -> None:
    """A minimal row, so that row triggers have something to fire on."""
    values = {}
    for column in metadata.tables[table].columns:
        if isinstance(column.type, Money):
            values[column.name] = Decimal(1)
        elif isinstance(column.type, (sa.Integer, sa.BigInteger)):
            values[column.name] = 1
        else:
            values[column.name] = "x"
    connection.execute(metadata.tables[table].insert().values(values))


def test_migration_0003_brings_money_columns_to_the_ledger_scale(books: sa.Engine) -> None:
    """A PostgreSQL database whose money columns have another scale (an older LEDGER_SCALE) is widened."""
    if books.dialect.name != "postgresql":
        pytest.skip("SQLite keeps money as text at any scale")
    from alembic import command
    from alembic.config import Config

    from chargeback_engine.costdb.connection import writing

    config = Config()
    config.set_main_option("script_location", str(files("chargeback_engine.costdb") / "migrations"))
    with writing(books) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        connection.execute(sa.text(f"ALTER TABLE invoices ALTER COLUMN total TYPE numeric(38, {LEDGER_SCALE - 2})"))
    open_database(books.url.render_as_string(hide_password=False)).dispose()
    with books.connect() as connection:
        scale = connection.execute(
            sa.text(
                "SELECT numeric_scale FROM information_schema.columns "
                "WHERE table_name = 'invoices' AND column_name = 'total'"
            )
        ).scalar()
    assert scale == LEDGER_SCALE
