"""Where a finished run's line items and ledger live, read through DuckDB without copying.

A run's ledger is several rows per line item: tens of millions of rows for a big month.
Materialising it as Python-side Arrow (let alone Python objects) would cost more memory
than the whole allocation, so the data plane hands over a :class:`RunStore` instead: the
DuckDB plane its own connection, the Spark plane the Parquet files its executors wrote.
Exporters stream ordered batches from the store into files; totals are SQL; only a caller
that asks for ``RunResult.ledger`` gets a whole Arrow table.

Two views, the same for every plane:

* ``records``: the line items, :data:`~chargeback_engine.focus.COST_TABLE_SCHEMA` plus
  :data:`LINE`, the position of the line in load order;
* ``ledger``: :data:`~chargeback_engine.ledger.LEDGER_SCHEMA` plus :data:`LINE`, the
  position of the row's source line (null for rows carried in from earlier schedules).

:data:`LEDGER_ORDER` is the one deterministic order of ledger rows; every output uses it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from chargeback_engine.focus import COST_TABLE_SCHEMA
from chargeback_engine.ledger import LEDGER_SCHEMA

#: Position of a line in load order: the link from a ledger row back to its line item.
LINE = "_line"
#: The deterministic order of ledger rows: this run's by stage and line, then rows carried
#: in from earlier schedules (``record_id`` settles carried rows that tie).
LEDGER_ORDER = f"{LINE} IS NULL, stage, {LINE}, period, cost_center, from_cost_center NULLS FIRST, amount, record_id"
#: Ledger columns that repeat a column of the row's line item, by the line item's column.
FROM_LINE = {
    "source_id": "x_SourceId", "source_row": "x_SourceRow", "charge_period_start": "ChargePeriodStart",
    "billing_account_id": "BillingAccountId", "sub_account_id": "SubAccountId", "service_name": "ServiceName",
    "service_category": "ServiceCategory", "resource_id": "ResourceId", "region_id": "RegionId",
    "charge_category": "ChargeCategory", "currency": "BillingCurrency",
}


def record_id_sql(alias: str = "") -> str:
    """A line's ``record_id`` in DuckDB SQL: a stable hash of its source and row. ``alias``
    qualifies the line item's columns (``"r."``)."""
    return f"md5({alias}x_SourceId || '#' || CAST({alias}x_SourceRow AS VARCHAR))"


def from_line_sql(alias: str) -> str:
    """The select list of :data:`FROM_LINE` from the line item aliased ``alias``."""
    return ", ".join(f"{alias}.{column} AS {name}" for name, column in FROM_LINE.items())


#: Rows per batch when the ledger is streamed.
BATCH_ROWS = 1 << 18
#: Prefix of a line item's columns next to its ledger rows (see :meth:`RunStore.ledger`).
RECORD = "record."


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for library work: no progress bar on stderr (the CLI draws its
    own, and a library must stay quiet), timestamps rendered in UTC."""
    con = duckdb.connect(database)
    con.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'")
    return con


def parquet_source(paths: Sequence[Path]) -> str:
    """A ``read_parquet`` relation over ``paths``, read in the order given."""
    quoted = ", ".join(sql_text(str(p)) for p in paths)
    return f"read_parquet([{quoted}])"


def sql_text(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


class RunStore:
    """The ``records`` and ``ledger`` views of one run, on one DuckDB connection.

    ``records_source`` and ``ledger_source`` are relations on ``connection`` (a table name
    or a ``read_parquet(...)`` call) with the columns the views promise. ``cleanup`` runs
    once, when the store is closed or garbage-collected (the Spark plane removes its files).
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, records_source: str, ledger_source: str,
                 cleanup: Callable[[], None] | None = None):
        self._con = connection
        self._records_source = records_source
        self._ledger_source = ledger_source
        self._carried = 0
        self._finalizer = weakref.finalize(self, _close, connection, cleanup)
        self._define_views()

    def _define_views(self) -> None:
        """Both views cast every column to one DuckDB type, so outputs are byte-identical
        whichever plane (and file format) the rows came from."""
        carried = "".join(f" UNION ALL BY NAME SELECT *, CAST(NULL AS BIGINT) AS {LINE} FROM carried_{i}"
                          for i in range(self._carried))
        self._con.execute(f"CREATE OR REPLACE TEMP VIEW records AS SELECT {_columns(COST_TABLE_SCHEMA)} "
                          f"FROM {self._records_source}")
        self._con.execute(f"CREATE OR REPLACE TEMP VIEW ledger AS SELECT {_columns(LEDGER_SCHEMA)} "
                          f"FROM (SELECT * FROM {self._ledger_source}{carried})")

    def add_carried(self, rows: pa.Table) -> None:
        """Add ledger rows that earlier runs scheduled for this run's period."""
        if rows.num_rows:
            self._con.register(f"carried_{self._carried}", rows.select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA))
            self._carried += 1
            self._define_views()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        return self._con.sql(query, params=params)

    def scalar(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """The one value ``query`` returns."""
        return self._con.sql(query, params=params).fetchall()[0][0]

    def table(self, query: str, params: Sequence[Any] | None = None, schema: pa.Schema | None = None) -> pa.Table:
        """The result of ``query`` as Arrow, cast to ``schema`` when given."""
        table = self._con.sql(query, params=params).to_arrow_table()
        return table.cast(schema) if schema is not None else table

    def ledger(self, where: str = "TRUE", record_columns: Sequence[str] = ()) -> pa.RecordBatchReader:
        """Ledger rows matching ``where`` (SQL over the ledger's columns) in :data:`LEDGER_ORDER`:
        ``LEDGER_SCHEMA`` columns, then the named columns of each row's line item, prefixed
        with :data:`RECORD`. Streamed, so an output never holds the whole ledger."""
        extra = "".join(f", r.{_quoted(c)} AS {_quoted(RECORD + c)}" for c in record_columns)
        join = f" LEFT JOIN records r ON r.{LINE} = l.{LINE}" if record_columns else ""
        order = ", ".join(f"l.{term.strip()}" for term in LEDGER_ORDER.split(","))
        query = f"SELECT l.* EXCLUDE ({LINE}){extra} FROM (SELECT * FROM ledger WHERE {where}) l{join} ORDER BY {order}"
        return self._con.sql(query).to_arrow_reader(BATCH_ROWS)

    def close(self) -> None:
        self._finalizer()


def _close(connection: duckdb.DuckDBPyConnection, cleanup: Callable[[], None] | None) -> None:
    connection.close()
    if cleanup is not None:
        cleanup()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(schema: pa.Schema) -> str:
    """``schema``'s columns plus :data:`LINE`, each cast to its DuckDB type."""
    return ", ".join(f"CAST({_quoted(f.name)} AS {_duckdb_type(f.type)}) AS {_quoted(f.name)}"
                     for f in (*schema, pa.field(LINE, pa.int64())))


def _duckdb_type(arrow: pa.DataType) -> str:
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision}, {arrow.scale})"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMPTZ" if arrow.tz else "TIMESTAMP"
    return {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER"}[arrow]
