"""The built-in file exporters: ledger, summary, FOCUS with allocation columns, audit trail.

All are deterministic (sorted rows, fixed writer settings), so a rerun is byte-identical.
CSV text cells that a spreadsheet would run as a formula get a leading ``'`` (:mod:`chargeback_engine.csvwriter`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chargeback_engine.components import Exporter, RunResult
from chargeback_engine.csvwriter import defused
from chargeback_engine.engine.store import RECORD, one_chunk
from chargeback_engine.focus import COST_TABLE_SCHEMA, ENCODED_TEXT, MONEY
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.sql_common import connect, sql_text

#: Rows per Parquet row group: fixed, so the files do not depend on how rows were batched.
ROW_GROUP_ROWS = 1 << 18


#: Text columns that keep min/max statistics: short values a reader filters on. Statistics of
#: the other text columns (ids, hashes, names) cost a sixth of the write and serve no query.
_FILTERED_TEXT = frozenset({"period", "cost_center", "currency"})
#: Text columns written plain: nearly every value differs, so a dictionary would not pay.
_UNIQUE_TEXT = frozenset({"record_id"})


def write_parquet(rows: pa.Table | Iterable[pa.RecordBatch], path: Path, schema: pa.Schema | None = None) -> Path:
    """zstd-compressed Parquet without the Arrow schema blob, in row groups of
    :data:`ROW_GROUP_ROWS`: the bytes depend on the values only, not on how they were held
    in memory (dictionary or plain text, batch sizes), so every plane writes the same file.

    Text columns (except ``record_id``, nearly unique) are dictionary-encoded, each row
    group's dictionary holding its values in order of first appearance
    (:func:`_values_dictionary`): a fifth less to encode than plain text, and smaller files."""
    if isinstance(rows, pa.Table):
        schema, rows = rows.schema, rows.to_batches()
    assert schema is not None
    nullable = pa.schema([f.with_nullable(True) for f in schema])  # as every plane's SQL results are
    text = {f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)}
    encoded = {f.name for f in schema if pa.types.is_string(f.type) or f.type == ENCODED_TEXT} - _UNIQUE_TEXT
    statistics = [f.name for f in schema if f.name not in text or f.name in _FILTERED_TEXT]
    written = pa.schema([f.with_type(ENCODED_TEXT) if f.name in encoded else f for f in nullable])
    with pq.ParquetWriter(
        path,
        written,
        compression="zstd",
        use_dictionary=sorted(encoded) or False,
        store_schema=False,
        write_statistics=statistics or False,
    ) as writer:

        def prepared() -> Iterator[pa.Table]:
            for group in _row_groups(rows, schema):
                # One chunk per row group: pyarrow cuts data pages at chunk boundaries, which differ by plane.
                table = group.cast(nullable).combine_chunks()
                columns = [
                    _values_dictionary(one_chunk(table[n])) if n in encoded else table[n] for n in table.column_names
                ]
                yield pa.Table.from_arrays(columns, schema=written)

        for table in _read_ahead(prepared()):
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return path


def _values_dictionary(column: pa.Array) -> pa.DictionaryArray:
    """Text as the dictionary the Parquet writer stores as is: the distinct values in order of
    first appearance, so it depends on the values only. A dictionary-encoded column is
    re-indexed without touching its text, unless its dictionary repeats a value or holds null."""
    if column.type == ENCODED_TEXT and not column.dictionary.null_count:
        indices = column.indices
        used = pc.unique(indices).drop_null()  # in order of first appearance
        values = column.dictionary.take(used)
        if len(pc.unique(values)) == len(values):
            renumbered = np.zeros(max(len(column.dictionary), 1), np.int32)  # a null's index, filled as 0, too
            renumbered[used.to_numpy()] = np.arange(len(used), dtype=np.int32)
            reindexed = renumbered[pc.fill_null(indices, 0).to_numpy()]  # a gather, where a hash lookup took 4x
            null = indices.is_null().to_numpy(zero_copy_only=False) if indices.null_count else None
            return pa.DictionaryArray.from_arrays(pa.array(reindexed, mask=null), values)
    return pc.dictionary_encode(column.cast(pa.string())).cast(ENCODED_TEXT)


def _read_ahead(batches: Iterable[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """``batches``, the next ones produced in a thread while the caller encodes this one.
    Streaming a ledger (DuckDB, then Arrow gathers) and encoding Parquet both release the
    GIL, so the two run on two cores instead of taking turns."""
    handoff: queue.Queue[Any] = queue.Queue(depth)
    finished, stop = object(), threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(finished)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            put(exc)

    producer = threading.Thread(target=produce, name="chargeback-read-ahead", daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def _row_groups(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        pending.append(batch)
        size += batch.num_rows
        while size >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(pending, schema)
            yield table.slice(0, ROW_GROUP_ROWS)
            rest = table.slice(ROW_GROUP_ROWS)
            pending, size = rest.to_batches(), rest.num_rows
    if size or not pending:
        yield pa.Table.from_batches(pending, schema)


def write_csv(rows: pa.Table | Iterable[pa.RecordBatch], path: Path, schema: pa.Schema | None = None) -> Path:
    """DuckDB's CSV writer, streaming: plain decimals (never exponents), UTC timestamps,
    quotes only where needed, formula-like text defused."""
    if isinstance(rows, pa.Table):
        schema, rows = rows.schema, rows.to_batches()
    assert schema is not None
    safe = (pa.RecordBatch.from_arrays([defused(c) for c in b.columns], schema=schema) for b in rows)
    writer = connect()
    writer.execute("SET threads = 1")  # formatting from one stream: more threads only contend
    try:
        writer.register("csv_rows", pa.RecordBatchReader.from_batches(schema, safe))
        writer.execute(f"COPY csv_rows TO {sql_text(str(path))} (HEADER, DELIMITER ',')")
    finally:
        writer.close()
    return path


class _FileExporter:
    options_schema: Mapping[str, Any] = {"type": "object", "additionalProperties": False}


class AllocationsExporter(_FileExporter):
    """``allocations.parquet``: the ledger of the run period."""

    name = "allocations"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        rows = result.store.ledger(result.in_period_sql)
        return [write_parquet(rows, directory / "allocations.parquet", rows.schema)]


class AllocationsCsvExporter(_FileExporter):
    """``allocations.csv``: the same rows as ``allocations.parquet``, for spreadsheets.
    Written on request: at 1M lines it is 1 GB, ten times the Parquet file."""

    name = "allocations-csv"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        rows = result.store.ledger(result.in_period_sql)
        return [write_csv(rows, directory / "allocations.csv", rows.schema)]


class ScheduleExporter(_FileExporter):
    """``schedule.parquet``: amortization parts that later periods receive (nothing when
    no part is deferred)."""

    name = "schedule"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        if not result.count(result.later_sql):
            return []
        rows = result.store.ledger(result.later_sql)
        return [write_parquet(rows, directory / "schedule.parquet", rows.schema)]


class DecisionsExporter(_FileExporter):
    """``decisions.parquet``: the audit trail, one row per decision."""

    name = "decisions"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        return [write_parquet(result.decisions, directory / "decisions.parquet")]


class SummaryExporter(_FileExporter):
    """``summary.csv``: cost_center,currency,amount for the run period."""

    name = "summary"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        """The run's :meth:`~RunResult.summary`, which its check and the CLI ask for too."""
        cost_centers, currencies, amounts = zip(*result.summary(), strict=True)
        table = pa.table(
            {
                "cost_center": pa.array(cost_centers, pa.string()),
                "currency": pa.array(currencies, pa.string()),
                "amount": pa.array(amounts, MONEY),
            }
        )
        return [write_csv(table, directory / "summary.csv")]


class FocusAllocatedExporter(_FileExporter):
    """``focus_allocated.parquet``: the input FOCUS columns, one row per allocation, with the
    policy's cost column set to the allocated amount and the FOCUS 1.3 allocation columns."""

    name = "focus-allocated"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        """Streamed from the store in ledger order, each row beside its line item's columns."""
        rows = result.store.ledger(result.in_period_sql, record_columns=COST_TABLE_SCHEMA.names)
        cost = result.policy.cost_column
        schema = pa.schema(
            [
                *(pa.field(c, rows.schema.field(RECORD + c).type) for c in COST_TABLE_SCHEMA.names),
                *(
                    pa.field(c, rows.schema.field(source).type if source else ENCODED_TEXT)
                    for c, source in _ALLOCATION_COLUMNS.items()
                ),
            ]
        )

        def focus(batch: pa.RecordBatch) -> pa.RecordBatch:
            columns = [
                batch.column("amount") if c == cost else batch.column(RECORD + c) for c in COST_TABLE_SCHEMA.names
            ]
            columns += [batch.column(source) if source else _details(batch) for source in _ALLOCATION_COLUMNS.values()]
            return pa.RecordBatch.from_arrays(columns, schema=schema)

        return [write_parquet((focus(b) for b in rows), directory / "focus_allocated.parquet", schema)]


#: FOCUS 1.3 allocation columns and the ledger column each is (None: built by ``_details``).
_ALLOCATION_COLUMNS = {
    "AllocatedMethodId": "method",
    "AllocatedMethodDetails": None,
    "x_CostCenterId": "cost_center",
    "x_AllocationRuleId": "rule_id",
    "x_PolicyVersion": "policy_version",
    "x_DecisionId": "decision_id",
}


#: The ledger columns ``AllocatedMethodDetails`` describes.
_DETAILED = ("decision_id", "stage", "category", "from_cost_center", "period")


def _details(batch: pa.RecordBatch) -> pa.DictionaryArray:
    """``AllocatedMethodDetails`` as compact JSON, built once per distinct combination of
    :data:`_DETAILED` in the batch (a few per decision, against thousands of rows each).
    Every value is an id, a category or a period that the policy schema limits to letters,
    digits, ``.``, ``_`` and ``-``, so quoting needs no escapes."""
    key, _ = _codes(batch.column(_DETAILED[0]))
    for name in _DETAILED[1:]:
        codes, size = _codes(batch.column(name))
        key = pc.add(pc.multiply(key, size), codes)
    distinct = pc.unique(key)
    firsts = batch.take(pc.index_in(distinct, value_set=key))

    def text(name: str) -> pa.Array:
        column = firsts.column(name)
        return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column

    def quoted(column: pa.Array) -> pa.Array:
        return pc.binary_join_element_wise('"', column, '"', "")

    pool = pc.fill_null(quoted(text("from_cost_center")), "null")
    json = pc.binary_join_element_wise(
        '{"decision_id":',
        quoted(text("decision_id")),
        ',"stage":',
        firsts.column("stage").cast(pa.string()),
        ',"category":',
        quoted(text("category")),
        ',"from_cost_center":',
        pool,
        ',"period":',
        quoted(text("period")),
        "}",
        "",
    )
    return pa.DictionaryArray.from_arrays(pc.index_in(key, value_set=distinct).cast(pa.int32()), json)


def _codes(column: pa.Array) -> tuple[pa.Array, int]:
    """``column`` as non-negative int64 codes, equal values equal codes (null is 0), and
    one more than the largest code."""
    if pa.types.is_integer(column.type):
        codes = pc.subtract(column.cast(pa.int64()), pc.min(column).as_py() or 0)
    else:
        codes = (column if pa.types.is_dictionary(column.type) else column.dictionary_encode()).indices.cast(pa.int64())
    codes = pc.fill_null(pc.add(codes, 1), 0)
    return codes, (pc.max(codes).as_py() or 0) + 1


@hookimpl
def chargeback_register_exporters(register: Callable[[Exporter], None]) -> None:
    for exporter in (
        AllocationsExporter(),
        AllocationsCsvExporter(),
        SummaryExporter(),
        FocusAllocatedExporter(),
        DecisionsExporter(),
        ScheduleExporter(),
    ):
        register(exporter)
