"""Where a finished run's line items and ledger live, read through DuckDB without copying.

A run's ledger is several rows per line item: tens of millions of rows for a big month.
Materialising it as Python-side Arrow (let alone Python objects) would cost more memory
than the whole allocation, so the data plane hands over a :class:`RunStore` instead: the
DuckDB plane its own connection, the Spark plane the Parquet files its executors wrote.
Exporters stream ordered batches from the store into files; totals are SQL; only a caller
that asks for ``RunResult.ledger`` gets a whole Arrow table.

Both planes keep their working ledger narrow (a few integers and short strings per row)
and hand it to a :class:`SortedLedgerStore`, which sorts it once (unless the plane inserted
it in order already) and widens each streamed batch by position into the line items and the
decisions.

Three views, the same for every plane:

* ``records``: the line items, :data:`~chargeback_engine.focus.COST_TABLE_SCHEMA` plus
  :data:`LINE`, the position of the line in load order;
* ``ledger``: :data:`~chargeback_engine.ledger.LEDGER_SCHEMA` plus :data:`LINE`, the
  position of the row's source line (null for rows carried in from earlier schedules);
* ``ledger_amounts``: the same rows, only :data:`AMOUNT_COLUMNS`, for totals. A store
  may serve it without joining the line items and decisions that ``ledger`` joins.

:data:`LEDGER_ORDER` is the one deterministic order of ledger rows; every output uses it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.focus import COST_TABLE_SCHEMA, ENCODED_TEXT
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.sql_common import sql_name, sql_text

if TYPE_CHECKING:
    from chargeback_engine.engine.dataplane import RunInfo

#: Position of a line in load order: the link from a ledger row back to its line item.
LINE = "_line"
#: The deterministic order of ledger rows: this run's by stage and line, then rows carried
#: in from earlier schedules (``record_id`` settles carried rows that tie).
LEDGER_ORDER = f"{LINE} IS NULL, stage, {LINE}, period, cost_center, from_cost_center NULLS FIRST, amount, record_id"
#: The ``ledger_amounts`` view's columns: what summaries, totals and counts need.
AMOUNT_COLUMNS = ("run_id", "period", "cost_center", "currency", "amount")
#: Ledger columns that repeat a column of the row's line item, by the line item's column.
FROM_LINE = {
    "source_id": "x_SourceId",
    "source_row": "x_SourceRow",
    "charge_period_start": "ChargePeriodStart",
    "billing_account_id": "BillingAccountId",
    "sub_account_id": "SubAccountId",
    "service_name": "ServiceName",
    "service_category": "ServiceCategory",
    "resource_id": "ResourceId",
    "region_id": "RegionId",
    "charge_category": "ChargeCategory",
    "currency": "BillingCurrency",
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
#: Lines per sort when a narrow ledger is sorted: one sort's memory, against one more scan.
SORT_LINES = 1 << 18
#: The sorted narrow ledger, in a compressed in-memory database: several rows per line
#: item, held until the run's outputs are written (at 1M lines 32 MB, 240 MB uncompressed).
SORTED = "sorted.ledger_sorted"
#: The narrow ledger in :data:`LEDGER_ORDER`, with money as ``amount`` and each row's
#: ``currency``: a view of :data:`SORTED`, or of a plane's ledger that is already in order.
IN_ORDER = "ledger_in_order"
#: Prefix of a line item's columns next to its ledger rows (see :meth:`RunStore.ledger`).
RECORD = "record."


def parquet_source(paths: Sequence[Path]) -> str:
    """A ``read_parquet`` relation over ``paths``, read in the order given."""
    quoted = ", ".join(sql_text(str(p)) for p in paths)
    return f"read_parquet([{quoted}])"


class RunStore:
    """The ``records``, ``ledger`` and ``ledger_amounts`` views of one run, on one DuckDB
    connection.

    ``records_source`` and ``ledger_source`` are relations on ``connection`` (a table name
    or a ``read_parquet(...)`` call) with the columns the views promise; ``amounts_source``,
    if given, a cheaper relation with the same rows' :data:`AMOUNT_COLUMNS` (and
    :data:`LINE`). ``cleanup`` runs once, when the store is closed or garbage-collected (the
    Spark plane removes its files).
    """

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        records_source: str,
        ledger_source: str,
        cleanup: Callable[[], None] | None = None,
        amounts_source: str | None = None,
    ):
        self._con = connection
        self._records_source = records_source
        self._ledger_source = ledger_source
        self._amounts_source = amounts_source or ledger_source
        self._carried = 0
        self._finalizer = weakref.finalize(self, _close, connection, cleanup)
        self._define_views()

    def _define_views(self) -> None:
        """Every view casts each column to one DuckDB type, so outputs are byte-identical
        whichever plane (and file format) the rows came from."""
        self._con.execute(
            f"CREATE OR REPLACE TEMP VIEW records AS SELECT {_columns(COST_TABLE_SCHEMA)} FROM {self._records_source}"
        )
        amounts = pa.schema([LEDGER_SCHEMA.field(c) for c in AMOUNT_COLUMNS])
        for view, source, schema in (
            ("ledger", self._ledger_source, LEDGER_SCHEMA),
            ("ledger_amounts", self._amounts_source, amounts),
        ):
            names = ", ".join(sql_name(c) for c in schema.names)
            carried = "".join(
                f" UNION ALL BY NAME SELECT {names}, CAST(NULL AS BIGINT) AS {LINE} FROM carried_{i}"
                for i in range(self._carried)
            )
            self._con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {_columns(schema)} "
                f"FROM (SELECT {names}, {LINE} FROM {source}{carried})"
            )

    def add_carried(self, rows: pa.Table) -> None:
        """Add ledger rows that earlier runs scheduled for this run's period."""
        if rows.num_rows:
            self._con.register(f"carried_{self._carried}", rows.select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA))
            self._carried += 1
            self._define_views()

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> duckdb.DuckDBPyRelation:
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
        extra = "".join(f", r.{sql_name(c)} AS {sql_name(RECORD + c)}" for c in record_columns)
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


def _columns(schema: pa.Schema) -> str:
    """``schema``'s columns plus :data:`LINE`, each cast to its DuckDB type."""
    return ", ".join(
        f"CAST({sql_name(f.name)} AS {_duckdb_type(f.type)}) AS {sql_name(f.name)}"
        for f in (*schema, pa.field(LINE, pa.int64()))
    )


def _duckdb_type(arrow: pa.DataType) -> str:
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision}, {arrow.scale})"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMPTZ" if arrow.tz else "TIMESTAMP"
    return {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER"}[arrow]


class SortedLedgerStore(RunStore):
    """A store over a narrow ledger, sorted once and widened batch by batch in Arrow.

    ``narrow`` is a table on ``connection`` with ``line, period, cost_center, stage,
    decision`` and the money, which ``amount`` (SQL) gives; ``connection`` also holds the
    plane's ``decisions`` table (:data:`~chargeback_engine.engine.dataplane.NUMBERED_DECISION_SCHEMA`). ``lines`` are the line
    items as :func:`encoded_lines` gives them. Widening gathers by position (``take``)
    instead of joining and sorting wide rows, which would cost several times the time and
    memory of the allocation; the ``ledger`` view still joins, for SQL totals.

    The sort goes by stage and by :data:`SORT_LINES` lines at a time, appending to
    :data:`SORTED` in order: sorting every row at once held a second and a third copy of
    the ledger (the sort's rows and keys) on top of the table and its sorted copy. The
    store drops ``narrow`` once sorted. A plane that inserted ``narrow`` in
    :data:`LEDGER_ORDER` already, each row with its ``currency``, says ``in_order``: the
    store then reads it as it is, without a copy.
    """

    #: Text columns that :meth:`_widen` copies; every other one is dictionary-encoded.
    _COPIED_TEXT = frozenset({"record_id", "period", "cost_center", "category"})

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        lines: pa.Table,
        narrow: str,
        run: RunInfo,
        amount: str = "amount",
        cleanup: Callable[[], None] | None = None,
        in_order: bool = False,
    ):
        connection.register("lines", lines)
        if in_order:
            connection.execute(f"""
                CREATE TEMP VIEW {IN_ORDER} AS
                SELECT line, period, cost_center, {amount} AS amount, stage, decision, currency FROM {narrow}
            """)
        else:
            _sort(connection, narrow, lines.num_rows, amount)
        connection.execute(f"""
            CREATE TEMP VIEW ledger_wide AS
            SELECT {sql_text(run.run_id)} AS run_id, {record_id_sql("r.")} AS record_id, {from_line_sql("r")},
                   l.period, l.cost_center, l.amount, l.stage, d.pool AS from_cost_center,
                   CASE WHEN d.category = 'direct' AND r.ChargeCategory = 'Credit' THEN 'credit'
                        ELSE d.category END AS category,
                   d.rule_id, d.method, d.decision_id,
                   {sql_text(run.policy_version)} AS policy_version, {sql_text(run.policy_hash)} AS policy_hash,
                   l.line AS {LINE}
            FROM {IN_ORDER} l JOIN lines r ON r.{LINE} = l.line JOIN decisions d USING (decision);
            CREATE TEMP VIEW ledger_sorted_amounts AS
            SELECT {sql_text(run.run_id)} AS run_id, period, cost_center, currency, amount, line AS {LINE} FROM {IN_ORDER}
        """)
        super().__init__(connection, "lines", "ledger_wide", cleanup, amounts_source="ledger_sorted_amounts")
        self._run = run
        # One batch, not a table: ``take`` on a table gives chunked arrays, which a batch of
        # the widened ledger could only hold after copying every column once more.
        self._lines = pa.RecordBatch.from_arrays([c.chunk(0) for c in lines.columns], schema=lines.schema)
        self._record_ids = (
            connection.sql(f"SELECT {record_id_sql()} FROM lines").to_arrow_table().column(0).combine_chunks()
        )
        self._from_line = self._lines.select(list(FROM_LINE.values())).rename_columns(list(FROM_LINE))
        decisions = connection.sql(
            "SELECT decision_id, rule_id, method, category, pool FROM decisions ORDER BY decision"
        ).to_arrow_table()
        # Per decision column, its values and where they are null, prepared once: widening a
        # batch then only gathers indices.
        self._by_decision = {c: _dictionary_values(decisions[c].combine_chunks()) for c in decisions.column_names}

    def ledger(self, where: str = "TRUE", record_columns: Sequence[str] = ()) -> pa.RecordBatchReader:
        fields = [*LEDGER_SCHEMA, *(pa.field(RECORD + c, COST_TABLE_SCHEMA.field(c).type) for c in record_columns)]
        schema = pa.schema(
            [
                pa.field(f.name, ENCODED_TEXT) if pa.types.is_string(f.type) and f.name not in self._COPIED_TEXT else f
                for f in fields
            ]
        )
        narrow = self._con.sql(
            f"SELECT line, period, cost_center, amount, stage, decision FROM {IN_ORDER} WHERE {where}"
        ).to_arrow_reader(BATCH_ROWS)

        def batches() -> Iterator[pa.RecordBatch]:
            yield from (self._widen(batch, record_columns, schema) for batch in narrow)
            # Only now: one connection streams one result at a time.
            yield from (
                batch.cast(schema)
                for batch in super(SortedLedgerStore, self).ledger(f"{LINE} IS NULL AND ({where})", record_columns)
            )

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _widen(self, narrow: pa.RecordBatch, record_columns: Sequence[str], schema: pa.Schema) -> pa.RecordBatch:
        """Ledger columns for ``narrow``'s rows: text as dictionaries whose indices are the
        line's position, the decision's number or zero, so no string is copied per row."""
        lines = narrow.column("line")
        line = self._from_line.take(lines)
        decision = pc.subtract(narrow.column("decision"), 1).cast(pa.int32())
        by_decision = {c: _indexed(values, missing, decision) for c, (values, missing) in self._by_decision.items()}
        constant = pa.array(np.zeros(narrow.num_rows, np.int32))
        credit = pc.and_(
            pc.equal(by_decision["category"], "direct"),
            pc.fill_null(pc.equal(line["charge_category"], "Credit"), False),
        )
        columns = {
            "run_id": pa.DictionaryArray.from_arrays(constant, pa.array([self._run.run_id])),
            "record_id": self._record_ids.take(lines),  # nearly unique: a dictionary would not pay
            **{c: line[c] for c in ("source_id", "source_row")},
            "period": narrow.column("period"),
            **{
                c: line[c]
                for c in (
                    "charge_period_start",
                    "billing_account_id",
                    "sub_account_id",
                    "service_name",
                    "service_category",
                    "resource_id",
                    "region_id",
                    "charge_category",
                )
            },
            "cost_center": narrow.column("cost_center"),
            "amount": narrow.column("amount"),
            "currency": line["currency"],
            "stage": narrow.column("stage"),
            "from_cost_center": by_decision["pool"],
            "category": pc.if_else(credit, "credit", by_decision["category"].cast(pa.string())),
            "rule_id": by_decision["rule_id"],
            "method": by_decision["method"],
            "decision_id": by_decision["decision_id"],
            "policy_version": pa.DictionaryArray.from_arrays(constant, pa.array([self._run.policy_version])),
            "policy_hash": pa.DictionaryArray.from_arrays(constant, pa.array([self._run.policy_hash])),
        }
        columns.update({RECORD + c: self._lines.column(c).take(lines) for c in record_columns})
        return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema)


def _sort(connection: duckdb.DuckDBPyConnection, narrow: str, lines: int, amount: str) -> None:
    """Copy ``narrow`` into :data:`SORTED` in :data:`LEDGER_ORDER`, with each row's currency,
    and drop it; :data:`IN_ORDER` then names the copy."""
    # The currency rides along (constant per run, so compression makes it nearly free):
    # totals then need no join of the whole ledger to the line items.
    select = (
        f"SELECT n.line, n.period, n.cost_center, {amount} AS amount, n.stage, n.decision, "
        f"r.BillingCurrency AS currency FROM {narrow} n JOIN lines r ON r.{LINE} = n.line"
    )
    connection.execute(f"ATTACH ':memory:' AS sorted (COMPRESS); CREATE TABLE {SORTED} AS {select} LIMIT 0")
    for (stage,) in connection.sql(f"SELECT DISTINCT stage FROM {narrow} ORDER BY stage").fetchall():
        for first in range(0, lines, SORT_LINES):
            connection.execute(
                f"""
                INSERT INTO {SORTED} {select}
                WHERE n.stage = $stage AND n.line >= $first AND n.line < $end AND r.{LINE} >= $first AND r.{LINE} < $end
                ORDER BY n.line, n.period, n.cost_center, amount
            """,
                {"stage": stage, "first": first, "end": first + SORT_LINES},
            )
            connection.execute("CHECKPOINT sorted")  # compresses the slice just appended
    connection.execute(f"DROP TABLE {narrow}; CREATE TEMP VIEW {IN_ORDER} AS SELECT * FROM {SORTED}")


def encoded_lines(records: pa.Table) -> pa.Table:
    """The line items as a :class:`SortedLedgerStore` wants them: one chunk per column, text
    dictionary-encoded (a fraction of the memory, and widening a ledger row gathers an index
    instead of copying text), and :data:`LINE` their position."""
    columns = {
        name: one_chunk(column).dictionary_encode()
        if pa.types.is_string(column.type)
        else one_chunk(column)  # encoded text keeps its dictionaries, unified
        for name, column in zip(records.column_names, records.columns)
        if name != LINE
    }
    return pa.table({**columns, LINE: pa.array(np.arange(records.num_rows, dtype=np.int64))})


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """``column`` as one array; a column already in one chunk is not copied, as
    ``combine_chunks`` would copy it."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _dictionary_values(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """``values`` as a dictionary may hold them (Parquet writers refuse nulls inside a
    dictionary, so null is ""), and where they were null (None: nowhere)."""
    if not values.null_count:
        return values, None
    return pc.fill_null(values, ""), pc.is_null(values)


def _indexed(values: pa.Array, missing: pa.Array | None, indices: pa.Array) -> pa.DictionaryArray:
    """``values[indices]`` without copying text; an index of a ``missing`` value is null."""
    if missing is not None:
        indices = pc.if_else(pc.take(missing, indices), pa.scalar(None, indices.type), indices)
    return pa.DictionaryArray.from_arrays(indices, values)
