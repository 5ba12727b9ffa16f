"""Building blocks for collector plugins: the traps every cloud API shares, solved once.

Every cloud collector pages through results, retries throttled calls and streams export
files far larger than memory; what it reads then goes through the one normaliser
(:mod:`chargeback_engine.normalise`) that ``focus-files`` uses too. Doing each of
these one way, here, keeps the provider plugins short and equally careful, and gives a
third-party collector the same guarantees for free.
"""

from __future__ import annotations

import io
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import IO, Any, Protocol, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import structlog

from chargeback_engine import focus
from chargeback_engine.canonical import sha256_hex
from chargeback_engine.errors import InputError
from chargeback_engine.files import table_sha256
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
from chargeback_engine.redact import redact
from chargeback_engine.sql import connect

log = structlog.get_logger(__name__)

T = TypeVar("T")

# --------------------------------------------------------------------------- exact numbers


def decimal_from_double(value: float) -> Decimal:
    """A double as the decimal its shortest repr spells (``0.1`` is 0.1, not 0.1000000000000000055...)."""
    return Decimal(repr(value))


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


#: A collector's ``deadline_seconds`` option: the whole collection's time budget for retries.
DEADLINE_SCHEMA = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": 86400,
    "default": 900,
    "description": "Seconds the whole collection may spend, retries included; then it fails.",
}


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff that gives up at a deadline (and, if set, after
    ``max_attempts`` attempts of one call).

    A collector calls :meth:`begin` once per collection, so the deadline covers every call
    of it together: a collection that keeps failing ends within ``deadline`` seconds
    however many calls it makes. Without :meth:`begin` each call has its own deadline.
    A server's ``Retry-After`` is a floor on the wait, never shortened by the jitter.
    """

    deadline: float = 900.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    max_attempts: int | None = None
    started_at: float | None = None

    def begin(self, deadline: float | None = None, *, max_attempts: int | None = None) -> RetryPolicy:
        """This policy for one collection, starting now: ``deadline`` seconds shared by every call."""
        return replace(
            self,
            deadline=self.deadline if deadline is None else deadline,
            max_attempts=max_attempts or self.max_attempts,
            started_at=self.clock.monotonic(),
        )

    def call(self, operation: Callable[[], T], *, retry_after: Callable[[Exception], float | None], what: str) -> T:
        """Run ``operation``; ``retry_after(exc)`` says how long at least to wait, or None to give up."""
        started = self.clock.monotonic() if self.started_at is None else self.started_at
        if self.clock.monotonic() - started > self.deadline:
            raise InputError(f"{what}: not attempted, the collection's {self.deadline:g}s deadline has passed")
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
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    raise InputError(
                        f"{what}: still failing after {attempt} attempts (at most {self.max_attempts}): "
                        f"{type(exc).__name__}"
                    ) from exc
                if self.clock.monotonic() + delay - started > self.deadline:
                    raise InputError(
                        f"{what}: still failing after {attempt} attempts and the {self.deadline:g}s deadline: "
                        f"{type(exc).__name__}"
                    ) from exc
                log.warning(
                    "collector.retry",
                    what=what,
                    attempt=attempt,
                    wait_seconds=round(delay, 3),
                    error=type(exc).__name__,
                )
                self.clock.sleep(delay)


# --------------------------------------------------------------------------- secrets


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
        redacted = redact(message, self.secrets)
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
    except Exception:
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
            log.warning(
                "collector.page_limit_without_next",
                what=self.what,
                page=self.pages,
                rows=len(rows),
                hint="the last page is exactly the page limit and has no next link; data may be missing",
            )
        if rows:
            digest = sha256_hex(json.dumps(rows, sort_keys=True, default=str))
            if digest in self._seen_pages:
                self.duplicate_pages += 1
                log.warning("collector.duplicate_page", what=self.what, page=self.pages)
                return False
            self._seen_pages.add(digest)
        self.rows += len(rows)
        report_progress(self.what, self.pages)
        return True

    def as_details(self) -> dict[str, int | bool]:
        return {
            "pages": self.pages,
            "duplicate_pages": self.duplicate_pages,
            "possibly_truncated": self.possibly_truncated,
        }


# --------------------------------------------------------------------------- versions and details


def content_version(table: pa.Table) -> str:
    """A version that changes exactly when the collected rows do: the hash of their Arrow IPC form."""
    return table_sha256(table.combine_chunks())


def table_details(table: pa.Table) -> dict[str, Any]:
    """Row count and exact totals per currency of each money column, for the run manifest."""
    totals: dict[str, dict[str, str]] = {}
    if table.num_rows:
        # Summed as decimal256: a decimal128 sum past 1e20 would wrap around without a word.
        wide = pa.table(
            {
                "BillingCurrency": table["BillingCurrency"],
                **{c: table[c].cast(pa.decimal256(76, focus.MONEY.scale)) for c in focus.MONEY_COLUMNS},
            }
        )
        for column in focus.MONEY_COLUMNS:
            grouped = wide.group_by("BillingCurrency").aggregate([(column, "sum")])
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


def tags_json(tags: Mapping[str, str | None]) -> str:
    """Tags as the FOCUS ``Tags`` JSON text: keys sorted so equal tags are equal text."""
    return json.dumps(dict(sorted(tags.items())), ensure_ascii=False, separators=(",", ":"))
