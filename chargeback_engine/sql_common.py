"""SQL text and DuckDB connections: the one quoting of literals and names, and the one way
the product opens a DuckDB connection."""

from __future__ import annotations

from typing import Literal

import duckdb

#: The SQL dialects the product writes: DuckDB's and Spark SQL's.
Dialect = Literal["duckdb", "spark"]


def sql_text(text: str) -> str:
    """``text`` as a SQL string literal, the same in DuckDB and Spark SQL (Spark also reads
    backslashes as escapes; :func:`chargeback_engine.policy.sql.condition_sql` doubles them)."""
    return "'" + text.replace("'", "''") + "'"


def sql_name(name: str, dialect: Dialect = "duckdb") -> str:
    """``name`` as a quoted identifier, ``"name"`` in DuckDB and ```name``` in Spark SQL
    (a column name may hold any character, ``tags.team`` a dot)."""
    quote = "`" if dialect == "spark" else '"'
    return quote + name.replace(quote, quote * 2) + quote


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for library work: no progress bar on stderr (the CLI draws its
    own, and a library must stay quiet), timestamps rendered in UTC. DuckDB's allocator
    keeps what a sort or a join freed until it allocates again; its background threads
    return it to the system, so one step does not start on top of the last one's memory."""
    con = duckdb.connect(database)
    con.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'; SET allocator_background_threads = true")
    return con
