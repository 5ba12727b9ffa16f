"""Export files far larger than memory, streamed in batches and mapped to the FOCUS cost table."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chargeback_engine import focus
from chargeback_engine.errors import InputError
from chargeback_engine.normalise import (
    COLUMN_ALIASES,
    Rounding,
    blank_as_null,
    csv_header,
    exact_money,
    normalise,
    summarise,
    tags_as_text,
    unique_columns,
)
from chargeback_engine.sql_common import connect

#: Rows per Arrow batch when streaming export files; bounds memory per batch.
BATCH_ROWS = 65_536


def iter_file_batches(
    stream: IO[bytes], *, name: str, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream an export file (``.csv``, ``.csv.gz``, ``.parquet``) batch by batch.

    CSV cells stay text (a column of digits is not a number until its mapping says so), an
    empty cell is null and nothing else is; only ``columns`` that the file has are read, so
    wide exports cost what they are used for. The file is checked as ``focus-files`` checks
    one on disk (:func:`~chargeback_engine.normalise.csv_header`), and a file that cannot be
    read or decompressed is an :class:`InputError` naming it.
    """
    try:
        yield from _batches(stream, name, columns)
    except (pa.ArrowInvalid, OSError) as exc:
        if name.endswith(".gz") and not isinstance(exc, pa.ArrowInvalid):
            raise InputError(
                f"{name}: the compressed data is corrupt or truncated ({exc}); fetch or compress the file again"
            ) from exc
        raise InputError(f"{name}: cannot be read ({exc})") from exc


def _batches(stream: IO[bytes], name: str, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    if name.endswith(".parquet"):
        parquet = pq.ParquetFile(stream)
        unique_columns(parquet.schema_arrow.names, name)
        wanted = [c for c in columns if c in parquet.schema_arrow.names] if columns is not None else None
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
        return
    if name.endswith(".gz"):
        text: IO[bytes] = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), "gzip")
    elif name.endswith(".csv"):
        text = stream
    else:
        raise InputError(f"{name}: unsupported export file type (expected .csv, .csv.gz or .parquet)")
    head = text.read(1 << 16)
    header = csv_header(head, name)
    wanted = [c for c in columns if c in header] if columns is not None else header
    reader = pacsv.open_csv(
        _Prepended(head, text),
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header},
            include_columns=wanted,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
    )
    yield from reader


class _Prepended(io.RawIOBase):
    """Bytes already read from a stream, followed by the rest of it."""

    def __init__(self, head: bytes, tail: IO[bytes]):
        self._head = head
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._tail.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class BatchMapper:
    """Maps raw export batches to the FOCUS cost table with one SQL ``SELECT`` over the batch.

    Before the SQL runs, ``money`` columns are made exact (the normaliser's
    :func:`~chargeback_engine.normalise.exact_money`, so the SQL computes with exact decimals),
    ``''`` in ``text`` columns becomes null, ``tags`` columns that arrive as maps become
    JSON text, and any declared column the file lacks is added as nulls, so one ``select``
    (reading the relation ``batch``) serves every column selection a provider lets users
    choose. What it selects, FOCUS columns as the provider wrote them, goes through
    :func:`~chargeback_engine.normalise.normalise` like every other input.
    """

    def __init__(
        self,
        select: str,
        *,
        source_id: str,
        money: Sequence[str] = (),
        text: Sequence[str] = (),
        tags: Sequence[str] = (),
        aliases: Mapping[str, str] | None = None,
    ):
        self.select = select
        self.source_id = source_id
        self.money = tuple(money)
        self.text = tuple(text)
        self.tags = tuple(tags)
        self.aliases = dict(aliases or {})
        self.rounding = Rounding()
        self._connection = connect()
        self._next_row = 1

    @property
    def columns(self) -> tuple[str, ...]:
        """Every raw column the mapping reads; pass it to :func:`iter_file_batches`."""
        return self.money + self.text + self.tags + tuple(self.aliases)

    def map(self, raw: pa.RecordBatch | pa.Table, *, where: str, first_row: int = 1) -> pa.Table:
        """Map one batch whose first row is data row ``first_row`` of the file ``where``."""
        batch = pa.Table.from_batches([raw]) if isinstance(raw, pa.RecordBatch) else raw
        present = set(batch.column_names)
        batch = batch.rename_columns(
            [self.aliases[c] if c in self.aliases and self.aliases[c] not in present else c for c in batch.column_names]
        )
        problems: list[tuple[int, str]] = []
        for column in self.money + self.text + self.tags:
            if column not in batch.column_names:
                kind = focus.MONEY if column in self.money else pa.string()
                batch = batch.append_column(column, pa.nulls(batch.num_rows, kind))
                continue
            values = batch[column]
            if column in self.money:
                values, bad = exact_money(values, column=column, rounding=self.rounding)
                problems += bad
            elif column in self.tags:
                values = blank_as_null(tags_as_text(values))
            elif pa.types.is_string(values.type):
                values = blank_as_null(values)
            batch = batch.set_column(batch.schema.get_field_index(column), column, values)
        if problems:
            raise InputError(summarise([f"{where}: row {first_row + row}: {text}" for row, text in sorted(problems)]))
        self._connection.register("batch", batch)
        try:
            mapped = self._connection.sql(self.select).to_arrow_table()
        except duckdb.Error as exc:
            raise InputError(f"{where}: {exc}") from exc
        finally:
            self._connection.unregister("batch")
        table = normalise(
            mapped,
            source_id=self.source_id,
            rounding=self.rounding,
            where=where,
            first_row=first_row,
            source_row=self._next_row,
        )
        self._next_row += table.num_rows
        return table


def focus_mapper(source_id: str) -> BatchMapper:
    """The mapping for exports that already speak FOCUS (AWS, Azure and GCP FOCUS exports):
    the columns as they are, other releases' names read as ``focus-files`` reads them."""
    money = [f.name for f in focus.COST_TABLE_SCHEMA if pa.types.is_decimal(f.type)]
    text = [c for c in focus.FOCUS_COLUMNS if c not in money and c != "Tags"]
    select = ", ".join(f'"{c}"' for c in focus.FOCUS_COLUMNS)
    return BatchMapper(
        f"SELECT {select} FROM batch",
        source_id=source_id,
        money=money,
        text=text,
        tags=["Tags"],
        aliases=COLUMN_ALIASES,
    )
