"""Building blocks for collector plugins: the traps every cloud API shares, solved once.

Every cloud collector pages through results, retries throttled calls, turns provider
numbers into exact decimals and streams export files far larger than memory. Doing each of
these one way, here, keeps the provider plugins short and equally careful, and gives a
third-party collector the same guarantees for free.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any, Protocol, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import structlog

from chargeback_engine import focus
from chargeback_engine.errors import InputError
from chargeback_engine.money import LEDGER_SCALE

log = structlog.get_logger(__name__)

T = TypeVar("T")

# --------------------------------------------------------------------------- exact numbers

#: Wide enough for any double's shortest repr and any provider's decimal text.
_WIDE = pa.decimal256(70, 40)


def decimal_from_double(value: float) -> Decimal:
    """A double as the decimal its shortest repr spells (``0.1`` is 0.1, not 0.1000000000000000055...)."""
    return Decimal(repr(value))


@dataclass
class Rounding:
    """Per column: values that carried more digits than the ledger keeps, and what rounding moved."""

    by_column: dict[str, tuple[int, Decimal]] = field(default_factory=dict)

    def add(self, column: str, values: int, residue: Decimal) -> None:
        count, total = self.by_column.get(column, (0, Decimal(0)))
        self.by_column[column] = (count + values, total + residue)

    def as_details(self) -> dict[str, dict[str, str | int]]:
        return {
            column: {"values": count, "residue": str(total.normalize())}
            for column, (count, total) in sorted(self.by_column.items())
        }


def to_money(values: pa.Array | pa.ChunkedArray, *, column: str, where: str, rounding: Rounding,
             first_row: int = 1) -> pa.ChunkedArray:
    """Exact money from decimal text, decimals, integers or doubles (through their shortest repr).

    Digits beyond the ledger scale (1e-10) are rounded half-to-even; how many values that
    touched and the exact amount it moved are added to ``rounding`` for the run manifest,
    so rounding is never silent. Text that is not a number raises, naming the row (the
    first value being data row ``first_row`` of ``where``).
    """
    values = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    if pa.types.is_floating(values.type):
        values = _flush_tiny(values, column, rounding).cast(pa.string())  # Arrow prints the shortest repr
    try:
        wide = values.cast(_WIDE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{where}: {_first_bad_number(values, column, first_row)}") from exc
    rounded = pc.round(wide, ndigits=LEDGER_SCALE, round_mode="half_to_even")
    changed = pc.sum(pc.not_equal(wide, rounded).cast(pa.int64())).as_py() or 0
    if changed:
        residue = pc.sum(pc.subtract(wide, rounded)).as_py() or Decimal(0)
        rounding.add(column, changed, residue)
    try:
        return rounded.cast(focus.MONEY)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{where}: column {column}: an amount does not fit DECIMAL(38,10)") from exc


def _flush_tiny(values: pa.ChunkedArray, column: str, rounding: Rounding) -> pa.ChunkedArray:
    """Doubles below 1e-20 (denormal noise) become 0 up front, their exact reprs counted as residue."""
    tiny = pc.and_(pc.less(pc.abs(values), 1e-20), pc.not_equal(values, 0.0))
    if not pc.any(tiny).as_py():
        return values
    moved = [decimal_from_double(v) for v in pc.filter(values, tiny).to_pylist()]
    rounding.add(column, len(moved), sum(moved, Decimal(0)))
    return pc.if_else(tiny, 0.0, values)


def _first_bad_number(values: pa.ChunkedArray, column: str, first_row: int) -> str:
    for row, text in enumerate(values.to_pylist(), start=first_row):
        if text is None:
            continue
        try:
            pa.array([text]).cast(_WIDE)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return f"row {row}, column {column}: {str(text)[:40]!r} is not a decimal number"
    return f"column {column}: not a decimal number"


# --------------------------------------------------------------------------- retries


class Clock(Protocol):
    """Time as retries see it; tests pass a fake one so backoff is checked without waiting."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class FakeClock:
    """A clock for tests: ``sleep`` only moves time forward and remembers each wait."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff that gives up at a deadline, not after a count.

    A server's ``Retry-After`` is a floor on the wait, never shortened by the jitter.
    """

    deadline: float = 900.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)

    def call(self, operation: Callable[[], T], *, retry_after: Callable[[Exception], float | None], what: str) -> T:
        """Run ``operation``; ``retry_after(exc)`` says how long at least to wait, or None to give up."""
        started = self.clock.monotonic()
        attempt = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                floor = retry_after(exc)
                if floor is None:
                    raise
                delay = max(floor, self.rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
                attempt += 1
                if self.clock.monotonic() + delay - started > self.deadline:
                    raise InputError(
                        f"{what}: still failing after {attempt} attempts and the {self.deadline:g}s deadline: "
                        f"{type(exc).__name__}"
                    ) from exc
                log.warning("collector.retry", what=what, attempt=attempt, wait_seconds=round(delay, 3),
                            error=type(exc).__name__)
                self.clock.sleep(delay)


# --------------------------------------------------------------------------- secrets

_SECRET_PATTERNS = [
    # header or canonical-request line: X-Amz-Security-Token: ..., 'Authorization': b'...'
    re.compile(r"((?:x-amz-security-token|authorization|x-goog-api-key|ocp-apim-subscription-key)"
               r"['\"]?\s*[:=]\s*b?['\"]?)([^'\"\n]+)", re.IGNORECASE),
    # credentials in XML or JSON response bodies (STS, token endpoints)
    re.compile(r"(<(?:SecretAccessKey|SessionToken|AccessKeyId)>)([^<]+)"),
    re.compile(r"(\\?[\"'](?:SecretAccessKey|SessionToken|secretAccessKey|sessionToken|access_token|refresh_token|"
               r"id_token|client_secret|accessToken|private_key)\\?[\"']\s*:\s*\\?[\"'])([^\"'\\]+)"),
]


class SecretRedactor(logging.Filter):
    """Blanks credentials that SDKs print in their own DEBUG logs (signed headers, STS replies).

    botocore, for one, logs the session token inside every signed request at DEBUG. The
    library never configures logging; it only attaches this filter to the SDK loggers that
    are known to print credentials, so a user who turns DEBUG on does not leak them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in _SECRET_PATTERNS:
            redacted = pattern.sub(r"\1***", redacted)
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACTOR = SecretRedactor()


def redact_sdk_logs(logger_names: Sequence[str], secrets: Sequence[str | None] = ()) -> None:
    """Attach the shared :class:`SecretRedactor` to ``logger_names`` (once) and teach it ``secrets``."""
    _REDACTOR.secrets.update(s for s in secrets if s and len(s) >= 8)
    for name in logger_names:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


# --------------------------------------------------------------------------- paging


#: Called with (what, done, total or None) as a collector reads; set by whoever shows progress.
ProgressListener = Callable[[str, int, int | None], None]
_listener: ContextVar[ProgressListener | None] = ContextVar("chargeback_progress_listener", default=None)


def report_progress(what: str, done: int, total: int | None = None) -> None:
    """Tell whoever is watching that ``done`` pages or files of ``what`` (of ``total``, when known) are read.

    Collectors call it after each page or file, so a terminal can show movement while a
    cloud API pages or a large file is read. :class:`PageLog` calls it for every page. It
    costs nothing when nobody listens, and a listener's failure never stops a collection.
    """
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(what, done, total)
    except Exception:  # noqa: BLE001 (progress display is never worth a failed run)
        log.debug("progress.listener_failed", what=what, exc_info=True)


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    """Send :func:`report_progress` calls made in this context (and this thread) to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


@dataclass
class PageLog:
    """Watches a paged result for the ways providers lose or repeat money.

    A page identical to an earlier non-empty page is skipped (it would double-count); a
    next-page token seen before is an error (following it would loop); a last page holding
    exactly the page limit is a warning, because some APIs end there without saying so.
    """

    what: str
    page_limit: int | None = None
    pages: int = 0
    rows: int = 0
    duplicate_pages: int = 0
    possibly_truncated: bool = False
    _seen_pages: set[str] = field(default_factory=set, repr=False)
    _seen_tokens: set[str] = field(default_factory=set, repr=False)

    def accept(self, rows: Sequence[Any], next_token: str | None) -> bool:
        """Record a page; False means it repeats an earlier page and must be skipped."""
        self.pages += 1
        if next_token is not None:
            if next_token in self._seen_tokens:
                raise InputError(f"{self.what}: page {self.pages} points back to a page already read")
            self._seen_tokens.add(next_token)
        elif self.page_limit is not None and len(rows) == self.page_limit:
            self.possibly_truncated = True
            log.warning("collector.page_limit_without_next", what=self.what, page=self.pages, rows=len(rows),
                        hint="the last page is exactly the page limit and has no next link; data may be missing")
        if rows:
            digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
            if digest in self._seen_pages:
                self.duplicate_pages += 1
                log.warning("collector.duplicate_page", what=self.what, page=self.pages)
                return False
            self._seen_pages.add(digest)
        self.rows += len(rows)
        report_progress(self.what, self.pages)
        return True

    def as_details(self) -> dict[str, int | bool]:
        return {"pages": self.pages, "duplicate_pages": self.duplicate_pages,
                "possibly_truncated": self.possibly_truncated}


# --------------------------------------------------------------------------- versions and details


def content_version(table: pa.Table) -> str:
    """A version that changes exactly when the collected rows do: the hash of their Arrow IPC form."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return "sha256:" + hashlib.sha256(sink.getvalue()).hexdigest()


def table_details(table: pa.Table) -> dict[str, Any]:
    """Row count and exact totals per currency of each money column, for the run manifest."""
    totals: dict[str, dict[str, str]] = {}
    if table.num_rows:
        for column in focus.MONEY_COLUMNS:
            grouped = table.group_by("BillingCurrency").aggregate([(column, "sum")])
            for currency, total in zip(grouped["BillingCurrency"].to_pylist(), grouped[f"{column}_sum"].to_pylist()):
                if total is not None:
                    totals.setdefault(column, {})[currency or ""] = str(total)
    return {"rows": table.num_rows, "totals": totals}


# --------------------------------------------------------------------------- export files

#: Rows per Arrow batch when streaming export files; bounds memory per batch.
BATCH_ROWS = 65_536


def iter_file_batches(
    stream: IO[bytes], *, name: str, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream an export file (``.csv``, ``.csv.gz``, ``.parquet``) batch by batch.

    CSV cells stay text (a column of digits is not a number until its mapping says so);
    only ``columns`` that the file has are read, so wide exports cost what they are used for.
    """
    if name.endswith(".parquet"):
        parquet = pq.ParquetFile(stream)
        wanted = [c for c in columns if c in parquet.schema_arrow.names] if columns is not None else None
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
        return
    if name.endswith(".gz"):
        text: IO[bytes] = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), "gzip")
    elif name.endswith(".csv"):
        text = stream
    else:
        raise InputError(f"{name}: unsupported export file type (expected .csv, .csv.gz or .parquet)")
    header, rest = _read_header(text, name)
    wanted = [c for c in columns if c in header] if columns is not None else header
    reader = pacsv.open_csv(
        _Prepended(rest, text),
        read_options=pacsv.ReadOptions(column_names=header, block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header}, include_columns=wanted, strings_can_be_null=True
        ),
    )
    yield from reader


def _read_header(stream: IO[bytes], name: str) -> tuple[list[str], bytes]:
    buffered = b""
    while b"\n" not in buffered:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        buffered += chunk
    line, _, rest = buffered.partition(b"\n")
    header = next(csv.reader([line.decode("utf-8-sig").rstrip("\r")]), [])
    if not header or header == [""]:
        raise InputError(f"{name}: the file is empty (no header row)")
    return header, rest


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

    Before the SQL runs, ``money`` columns are made exact (:func:`to_money`), ``tags``
    columns that arrive as maps become JSON text, and any declared column the file lacks is
    added as nulls, so one ``select`` (reading the relation ``batch``, timestamps parsed in
    UTC) serves every column selection a provider lets users choose.
    """

    def __init__(
        self,
        select: str,
        *,
        source_id: str,
        money: Sequence[str] = (),
        text: Sequence[str] = (),
        tags: Sequence[str] = (),
    ):
        self.select = select
        self.source_id = source_id
        self.money = tuple(money)
        self.text = tuple(text)
        self.tags = tuple(tags)
        self.rounding = Rounding()
        self._connection = duckdb.connect()
        self._connection.execute("SET TimeZone = 'UTC'")
        self._next_row = 1

    @property
    def columns(self) -> tuple[str, ...]:
        """Every raw column the mapping reads; pass it to :func:`iter_file_batches`."""
        return self.money + self.text + self.tags

    def map(self, raw: pa.RecordBatch | pa.Table, *, where: str, first_row: int = 1) -> pa.Table:
        """Map one batch whose first row is data row ``first_row`` of the file ``where``."""
        batch = pa.Table.from_batches([raw]) if isinstance(raw, pa.RecordBatch) else raw
        for column in self.money:
            if column in batch.column_names:
                exact = to_money(batch[column], column=column, where=where, rounding=self.rounding,
                                 first_row=first_row)
                batch = batch.set_column(batch.schema.get_field_index(column), column, exact)
        for column in self.tags:
            if column in batch.column_names and not pa.types.is_string(batch[column].type):
                batch = batch.set_column(batch.schema.get_field_index(column), column, self._json(batch[column]))
        for column in self.columns:
            if column not in batch.column_names:
                kind = focus.MONEY if column in self.money else pa.string()
                batch = batch.append_column(column, pa.nulls(batch.num_rows, kind))
        self._connection.register("batch", batch)
        try:
            mapped = self._connection.sql(self.select).to_arrow_table()
        except duckdb.Error as exc:
            raise InputError(f"{where}: {exc}") from exc
        finally:
            self._connection.unregister("batch")
        rows = pa.array(range(self._next_row, self._next_row + mapped.num_rows), pa.int64())
        self._next_row += mapped.num_rows
        mapped = mapped.append_column("x_SourceId", pa.array([self.source_id] * mapped.num_rows, pa.string()))
        mapped = mapped.append_column("x_SourceRow", rows)
        return focus.conform(mapped)

    def _json(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        relation = pa.table({"v": values})
        self._connection.register("tag_values", relation)
        try:
            return self._connection.sql("SELECT to_json(v)::VARCHAR AS j FROM tag_values").to_arrow_table()["j"]
        finally:
            self._connection.unregister("tag_values")


def focus_mapper(source_id: str) -> BatchMapper:
    """The mapping for exports that already speak FOCUS (AWS, Azure and GCP FOCUS exports)."""
    timestamps = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}
    quantities = {"ConsumedQuantity", "PricingQuantity"}
    money = [*focus.MONEY_COLUMNS, *sorted(quantities)]
    text = [c for c in focus.FOCUS_COLUMNS if c not in money and c != "Tags"]
    select = ",\n".join(
        f'CAST("{c}" AS TIMESTAMPTZ) AS "{c}"' if c in timestamps else f'"{c}"' for c in focus.FOCUS_COLUMNS
    )
    return BatchMapper(f"SELECT {select} FROM batch", source_id=source_id, money=money, text=text, tags=["Tags"])


def tags_json(tags: Mapping[str, str | None]) -> str:
    """Tags as the FOCUS ``Tags`` JSON text: keys sorted so equal tags are equal text."""
    return json.dumps(dict(sorted(tags.items())), ensure_ascii=False, separators=(",", ":"))
