"""SQL text and DuckDB connections: the one quoting of literals and names, and the one way
the product opens a DuckDB connection."""

from __future__ import annotations

import duckdb


def sql_text(text: str) -> str:
    """``text`` as a SQL string literal, the same in DuckDB and Spark SQL (Spark also reads
    backslashes as escapes; :func:`chargeback_engine.policy.sql.condition_sql` doubles them)."""
    return "'" + text.replace("'", "''") + "'"


def sql_name(name: str) -> str:
    """``name`` as a quoted DuckDB identifier (a column name may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for library work: no progress bar on stderr (the CLI draws its
    own, and a library must stay quiet), timestamps rendered in UTC. DuckDB's allocator
    keeps what a sort or a join freed until it allocates again; its background threads
    return it to the system, so one step does not start on top of the last one's memory."""
    con = duckdb.connect(database)
    con.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'; SET allocator_background_threads = true")
    return con
