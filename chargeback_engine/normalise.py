"""The one normaliser: cost data as read, from any path, becomes the FOCUS cost table here.

``focus-files`` (CSV and Parquet on disk) and every cloud collector (export files from S3
or Blob storage, rows from a cost API) end in :func:`normalise`, so a value means the same
whatever brought it, and a file is never accepted from S3 and refused from disk. The rules
(docs/reading-cost-files.md):

- Money and quantities are exact, from decimal text, decimals, integers or doubles (through
  their shortest repr). Up to ``LEDGER_SCALE`` (18) digits after the point are kept as
  written; more are rounded half to even, and :class:`Rounding` records per column how many
  values that touched and the exact residue (input minus rounded). NaN, Infinity, text that
  is not a number and amounts of 1e20 or more are located errors.
- ``''`` is null in every column, as an empty CSV cell is.
- Timestamps are ISO 8601 text or timestamps; one without an offset is UTC.
- ``Tags`` is a JSON object (text, or a map/struct column as Parquet stores it), rewritten by
  :func:`canonical_tags`; nested deeper than :data:`MAX_TAG_DEPTH` or holding a lone
  surrogate, it is a located error.
- ``BillingCurrency`` is an ISO 4217 code; the required columns are never null.

Every problem is found in one pass and raised as one :class:`InputError` naming the file (or
API), the row and the column, so a bad input is reported in full and never yields a partial
table.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    InvalidOperation,
)
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.errors import InputError
from chargeback_engine.focus import (
    COST_TABLE_SCHEMA,
    ENCODED_TEXT,
    MONEY,
    REQUIRED_COLUMNS,
    conform,
)
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE
from chargeback_engine.sql_common import connect

#: Columns renamed between FOCUS releases: older (or newer) name -> the name we use. When a
#: file has both, the current name wins.
COLUMN_ALIASES = {
    "AmortizedCost": "EffectiveCost",  # renamed in 1.0-preview
    "ChargeType": "ChargeCategory",  # renamed in 1.0-preview
    "UsageQuantity": "ConsumedQuantity",  # renamed in 1.0
    "UsageUnit": "ConsumedUnit",  # renamed in 1.0
    "Region": "RegionId",  # renamed in 1.0
    "ServiceProviderName": "ProviderName",  # FOCUS 1.3 deprecates ProviderName for it
}
#: Money columns every FOCUS file has, never null (FOCUS 1.0 and later).
NOT_NULL_MONEY = ("BilledCost", "EffectiveCost")
#: How many problems one error message lists before it says "and N more".
MAX_REPORTED = 20
#: How deep a tag value may nest arrays and objects: far beyond any provider's tags, and far
#: below the depth at which a recursive reader runs out of stack.
MAX_TAG_DEPTH = 32
#: Amounts the ledger holds are below this (DECIMAL(38, 18) has 20 digits before the point).
LIMIT = Decimal(10) ** (38 - LEDGER_SCALE)

_NOT_NULL = (*REQUIRED_COLUMNS, *NOT_NULL_MONEY)
_TIMESTAMP_COLUMNS = frozenset(f.name for f in COST_TABLE_SCHEMA if pa.types.is_timestamp(f.type))
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
#: Decimal text as providers write it: no digit separators, no NaN or Infinity.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
#: An exponent the vectorised path does not trust (|e| >= 40).
_LARGE_EXPONENT = r"[eE][+-]?0*(?:[4-9][0-9]|[1-9][0-9]{2,})"
#: Where the vectorised path reads numbers: every amount below LIMIT, 40 digits after the point.
_WIDE = pa.decimal256(38 - LEDGER_SCALE + 40, 40)
#: Sums and differences of any decimals, never rounded.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

Problems = list[tuple[int, str]]  # (row index, what is wrong)


# --------------------------------------------------------------------------- money


@dataclass
class Rounding:
    """Per column: how many values carried more digits than the ledger keeps, and the exact
    sum of what rounding them moved (input minus rounded)."""

    by_column: dict[str, tuple[int, Decimal]] = field(default_factory=dict)

    def add(self, column: str, values: int, residue: Decimal) -> None:
        count, total = self.by_column.get(column, (0, Decimal(0)))
        self.by_column[column] = (count + values, _EXACT.add(total, residue))

    def as_details(self) -> dict[str, dict[str, str | int]]:
        """``{column: {"values": n, "residue": "exact decimal text"}}``, for the run manifest."""
        return {
            column: {"values": count, "residue": _decimal_text(total)}
            for column, (count, total) in sorted(self.by_column.items())
        }


def _decimal_text(value: Decimal) -> str:
    """A decimal as plain digits, without exponent or trailing zeros (``-5E-19`` -> ``-0.0000000000000000005``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def exact_money(
    values: pa.Array | pa.ChunkedArray, *, column: str, rounding: Rounding
) -> tuple[pa.ChunkedArray, Problems]:
    """``values`` as exact :data:`~chargeback_engine.focus.MONEY`, and the rows that are not money.

    Vectorised when every value reads into 40 digits after the point; otherwise (a bad value,
    more digits, an amount too large) value by value, which locates each problem.
    """
    values = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    if values.type == MONEY:
        return values, []
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_null(values.type):
        return pa.chunked_array([pa.nulls(len(values), MONEY)]), []
    if pa.types.is_decimal(values.type) and values.type.scale <= LEDGER_SCALE:
        try:  # nothing to round: one exact cast (safe casts refuse what does not fit)
            return values.cast(MONEY), []
        except pa.ArrowInvalid:
            return _money_by_value(values, column, rounding)
    if _is_text(values.type):
        values = blank_as_null(pc.utf8_trim_whitespace(values))
    elif pa.types.is_floating(values.type):
        values = values.cast(pa.string())  # Arrow prints the shortest repr; nan and inf are refused below
    if _is_text(values.type) and pc.any(pc.match_substring_regex(values, _LARGE_EXPONENT)).as_py():
        return _money_by_value(values, column, rounding)  # Arrow reads 1e-218 as 0, without a word
    try:
        wide = values.cast(_WIDE)
        rounded = pc.round(wide, ndigits=LEDGER_SCALE, round_mode="half_to_even")
        money = rounded.cast(MONEY)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _money_by_value(values, column, rounding)
    changed = pc.not_equal(wide, rounded)
    count = pc.sum(changed.cast(pa.int64())).as_py() or 0
    if count:
        rounding.add(column, count, pc.sum(pc.subtract(wide, rounded)).as_py())
    return money, []


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _money_by_value(values: pa.ChunkedArray, column: str, rounding: Rounding) -> tuple[pa.ChunkedArray, Problems]:
    amounts: list[Decimal | None] = []
    problems: Problems = []
    count, residue = 0, Decimal(0)
    for row, value in enumerate(values.to_pylist()):
        try:
            amount = _one_amount(value)
        except ValueError as exc:
            problems.append((row, f'{column}: "{shown(value)}" {exc}'))
            amounts.append(None)
            continue
        if amount is None:
            amounts.append(None)
            continue
        kept = amount.quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN, context=_EXACT)
        if abs(kept) >= LIMIT:
            problems.append(
                (row, f'{column}: "{shown(value)}" does not fit the ledger (amounts are below 1e{38 - LEDGER_SCALE})')
            )
            amounts.append(None)
            continue
        if kept != amount:
            count += 1
            residue = _EXACT.add(residue, _EXACT.subtract(amount, kept))
        amounts.append(kept)
    if count:
        rounding.add(column, count, residue)
    return pa.chunked_array([pa.array(amounts, MONEY)]), problems


def _one_amount(value: Any) -> Decimal | None:
    """One value as an exact decimal; ``ValueError`` says what is wrong with it."""
    if value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("is not a decimal number")
    if _NOT_FINITE.fullmatch(text):
        raise ValueError("is not a finite number")
    if not _NUMBER.fullmatch(text):
        raise ValueError("is not a decimal number")
    try:
        amount = Decimal(text)
        if amount.adjusted() >= 38 - LEDGER_SCALE:
            raise ValueError(f"does not fit the ledger (amounts are below 1e{38 - LEDGER_SCALE})")
        return amount
    except InvalidOperation:
        raise ValueError("is not a decimal number") from None


def to_money(
    values: pa.Array | pa.ChunkedArray, *, column: str, where: str, rounding: Rounding, first_row: int = 1
) -> pa.ChunkedArray:
    """:func:`exact_money` for a collector's own columns (before its mapping computes with them):
    a problem raises, naming data row ``first_row`` + i of ``where``."""
    money, problems = exact_money(values, column=column, rounding=rounding)
    if problems:
        raise InputError(summarise([f"{where}: row {first_row + row}: {text}" for row, text in problems]))
    return money


# --------------------------------------------------------------------------- text and tags


def blank_as_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``''`` as null, as an empty CSV cell reads; dictionary-encoded text stays encoded."""
    if pa.types.is_dictionary(column.type):
        return pa.chunked_array([_blank_entries_as_null(c) for c in column.chunks], column.type)
    blank = pc.equal(column, "")
    if not pc.any(blank).as_py():
        return column
    return pc.if_else(blank, pa.scalar(None, column.type), column)


def _blank_entries_as_null(chunk: pa.DictionaryArray) -> pa.DictionaryArray:
    blank = pc.indices_nonzero(pc.equal(chunk.dictionary, ""))
    if not len(blank):
        return chunk
    indices = pc.if_else(
        pc.is_in(chunk.indices, value_set=blank.cast(chunk.indices.type)),
        pa.scalar(None, chunk.indices.type),
        chunk.indices,
    )
    return pa.DictionaryArray.from_arrays(indices, chunk.dictionary)


def tags_as_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Tags stored as a map or struct (as Parquet exports hold them) as JSON object text."""
    if pa.types.is_string(values.type) or values.type == ENCODED_TEXT:
        return values
    if pa.types.is_large_string(values.type) or pa.types.is_dictionary(values.type):
        return values.cast(pa.string())
    return _duckdb_select(pa.table({"v": values}), ["to_json(v)::VARCHAR AS v"])["v"]


def canonical_tags(text: str) -> str:
    """The tag rule: a JSON object whose values are all strings; null values are dropped.

    Numbers keep the text the provider wrote (``1.50`` -> ``"1.50"``), ``true``/``false``
    become ``"true"``/``"false"``, arrays and objects become their compact JSON text; keys
    are kept as written (normalising them is the policy's job). Raises ``ValueError``,
    saying what is wrong, for anything else.
    """
    if _is_canonical(text):
        return text
    if text.count("{") + text.count("[") > MAX_TAG_DEPTH and _depth(text) > MAX_TAG_DEPTH:
        raise ValueError(f"nests arrays or objects more than {MAX_TAG_DEPTH} deep")
    try:
        parsed = json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
            object_pairs_hook=lambda pairs: _Object(_unique_pairs(pairs)),
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
    if not isinstance(parsed, _Object):
        raise ValueError("is not a JSON object")
    tags = {
        k: v if isinstance(v, str) and not isinstance(v, _Number) else _json_text(v) for k, v in parsed if v is not None
    }
    result = json.dumps(tags, ensure_ascii=False, separators=(",", ":"))
    try:
        result.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = result[exc.start : exc.end].encode("utf-8", "backslashreplace").decode()
        raise ValueError(f"holds a lone surrogate ({bad}), which is not Unicode text") from None
    return result


#: Tags as :func:`canonical_tags` writes them (compact, non-ASCII as is), by the C encoder.
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _is_canonical(text: str) -> bool:
    """True if ``text`` is already what :func:`canonical_tags` makes of it, as most tags are:
    an object of string values that the C parser and encoder give back unchanged (so it has
    no duplicate key, no null, no number and no escaped lone surrogate)."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return type(parsed) is dict and all(type(v) is str for v in parsed.values()) and _compact_json(parsed) == text


def _depth(text: str) -> int:
    """How deep ``text`` nests arrays and objects, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class _Number(str):
    """A JSON number, kept as the text the provider wrote."""


class _Object(list[tuple[str, Any]]):
    """A parsed JSON object, as its (key, value) pairs in order."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"is not valid JSON ({name} is not a JSON number)")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"has the key {shown(duplicate)!r} more than once")
    return pairs


def _json_text(value: Any) -> str:
    """Compact JSON text of a parsed value, numbers exactly as written."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, _Object):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_json_text(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _convert_tags(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Apply the tag rule once per distinct tag object; each row keeps its index into the
    rewritten objects (the result stays dictionary-encoded), and its problem, if any.

    A month has far fewer distinct tag objects than lines (one per resource at most), so
    this is the one place where Python looks at values, and never once per line.
    """
    column = blank_as_null(tags_as_text(column))
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    encoded = encoded.unify_dictionaries()
    distinct = encoded.chunks[0].dictionary.to_pylist() if encoded.num_chunks else []
    values: list[str | None] = []
    problems: list[str | None] = []
    for text in distinct:
        try:
            values.append(canonical_tags(text))
            problems.append(None)
        except ValueError as exc:
            values.append(None)
            problems.append(f'Tags: "{shown(text)}" {exc}')
    values_array, problems_array = pa.array(values, pa.string()), pa.array(problems, pa.string())
    indices = [chunk.indices for chunk in encoded.chunks]
    return (
        pa.chunked_array([pa.DictionaryArray.from_arrays(i, values_array) for i in indices], ENCODED_TEXT),
        pa.chunked_array([problems_array.take(i) for i in indices], pa.string()),
    )


def shown(value: Any) -> str:
    """A value as an error message shows it: at most 60 characters, anything unprintable escaped."""
    return str(value)[:60].encode("utf-8", "backslashreplace").decode("utf-8")


# --------------------------------------------------------------------------- the cost table


def normalise(
    raw: pa.Table,
    *,
    source_id: str,
    rounding: Rounding,
    where: str | None = None,
    first_row: int = 1,
    source_row: int | None = None,
) -> pa.Table:
    """The cost table of ``raw``, FOCUS columns as read (text, doubles, decimals, timestamps,
    maps), by the module's rules.

    Row ``i`` of ``raw`` is data row ``first_row + i`` of ``where`` (``source_id`` when not
    given) in messages, and ``x_SourceRow`` ``source_row + i`` (``first_row`` by default)
    of the source ``source_id``. Columns already of the cost table's type pass through
    untouched. What rounding moved is added to ``rounding``; every problem raises one
    :class:`InputError`.
    """
    where = where or source_id
    n = raw.num_rows
    columns: dict[str, pa.ChunkedArray] = {}
    problems: list[tuple[int, str]] = []
    timestamps: list[str] = []
    for spec in COST_TABLE_SCHEMA:
        if spec.name.startswith("x_"):
            continue
        if spec.name not in raw.column_names:
            if spec.name in _NOT_NULL and n:
                problems.append((first_row, f"{spec.name}: the column is missing"))
            continue
        column = raw[spec.name]
        bad: Iterable[tuple[int, str]] = ()
        if spec.name == "Tags":
            column, flagged = _convert_tags(column)
            bad = _flagged_rows(flagged)
        elif pa.types.is_decimal(spec.type):
            column, bad = exact_money(column, column=spec.name, rounding=rounding)
        elif spec.name in _TIMESTAMP_COLUMNS:
            timestamps.append(spec.name)
            if _is_text(column.type):
                column = blank_as_null(column)
        else:
            if column.type != ENCODED_TEXT and not pa.types.is_string(column.type):
                column = column.cast(pa.string())
            column = blank_as_null(column)
            if spec.name == "BillingCurrency":
                bad = _flagged_rows(_currency_problems(column))
        bad = list(bad)
        problems += [(first_row + row, text) for row, text in bad]
        if spec.name in _NOT_NULL and column.null_count and spec.name not in _TIMESTAMP_COLUMNS:
            problems += _missing(spec.name, column, {row for row, _ in bad}, first_row)
        columns[spec.name] = column
    if timestamps:
        converted, bad_times = _timestamps({name: columns[name] for name in timestamps})
        columns.update(converted)
        problems += [(first_row + row, text) for row, text in bad_times]
    if problems:
        raise InputError(summarise([f"{where}: row {row}: {text}" for row, text in sorted(problems)]))
    start = first_row if source_row is None else source_row
    columns["x_SourceId"] = pa.chunked_array(
        [pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([source_id]))]
    )
    columns["x_SourceRow"] = pa.chunked_array([pa.array(np.arange(start, start + n, dtype=np.int64))])
    return conform(pa.table(columns))


def _flagged_rows(flagged: pa.ChunkedArray | pa.Array) -> Problems:
    if flagged.null_count == len(flagged):
        return []
    bad = pc.is_valid(flagged)
    return list(zip(pc.indices_nonzero(bad).to_pylist(), flagged.filter(bad).to_pylist()))


def _missing(name: str, column: pa.ChunkedArray, already: set[int], first_row: int) -> list[tuple[int, str]]:
    rows = pc.indices_nonzero(pc.is_null(column)).to_pylist()
    return [(first_row + row, f"{name}: is missing") for row in rows if row not in already]


def _currency_problems(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Checked once per distinct value: a month has a handful of currencies, not millions."""
    invalid = [c for c in column.unique().drop_null().to_pylist() if not _CURRENCY_CODE.fullmatch(c)]
    if not invalid:
        return pa.nulls(0, pa.string())
    text = pc.binary_join_element_wise(
        'BillingCurrency: "',
        pc.utf8_slice_codeunits(column.cast(pa.string()), 0, 60),
        '" is not an ISO 4217 currency code',
        "",
    )
    return pc.if_else(pc.is_in(column, pa.array(invalid)), text, None)


def _timestamps(columns: dict[str, pa.ChunkedArray]) -> tuple[dict[str, pa.ChunkedArray], Problems]:
    """ISO 8601 text or timestamps as UTC timestamps, in one DuckDB pass; the rows that are not."""
    expressions, checks = [], []
    for name, column in columns.items():
        col = f'"{name}"'
        if pa.types.is_timestamp(column.type) and column.type.tz:
            expressions.append(f"{col}::TIMESTAMPTZ AS {col}")
        elif pa.types.is_timestamp(column.type):
            expressions.append(f"timezone('UTC', {col}) AS {col}")
        else:
            value = f"TRY_CAST(trim({col}::VARCHAR) AS TIMESTAMPTZ)"
            expressions.append(f"{value} AS {col}")
            checks.append(
                f"CASE WHEN {col} IS NOT NULL AND {value} IS NULL THEN '{name}: \"' || "
                f"left({col}::VARCHAR, 60) || '\" is not an ISO 8601 date-time' END"
            )
        if name in _NOT_NULL:
            checks.append(f"CASE WHEN {col} IS NULL THEN '{name}: is missing' END")
    problem = f"NULLIF(concat_ws('; ', {', '.join(checks)}), '')" if checks else "NULL"
    table = _duckdb_select(pa.table(columns), [*expressions, f"{problem} AS _problem"])
    converted = {name: table[name] for name in columns}
    return converted, _flagged_rows(table["_problem"])


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process, used only to compute; opening one costs ~70 ms."""
    return connect()


def _duckdb_select(table: pa.Table, expressions: list[str]) -> pa.Table:
    con = _database().cursor()  # a connection of its own, so concurrent reads do not share views
    try:
        con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")  # a library prints nothing
        con.register("raw", table)
        return con.sql(f"SELECT {', '.join(expressions)} FROM raw").to_arrow_table()
    finally:
        con.close()


def summarise(problems: Sequence[str]) -> str:
    shown_problems = list(problems[:MAX_REPORTED])
    more = len(problems) - len(shown_problems)
    return "\n".join(shown_problems + ([f"... and {more} more problem(s)"] if more else []))


# --------------------------------------------------------------------------- CSV files


def csv_header(head: bytes, where: str) -> list[str]:
    """The header row of a CSV cost file from its first bytes (decompressed), checked.

    UTF-16 (a byte-order mark or NUL bytes) is refused with what to do: the files are UTF-8.
    The header ends at the first CR or LF, so CR-only line ends read like any others. A
    column named twice is refused: which of the two holds the money is anyone's guess.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:4096]:
        raise InputError(
            f"{where}: the file is UTF-16 encoded (it has a byte-order mark or NUL bytes); "
            "cost files must be UTF-8: save it again as UTF-8 CSV"
        )
    text = head.decode("utf-8-sig", errors="replace")
    line = re.split(r"\r\n?|\n", text, maxsplit=1)[0]
    if not line.strip():
        raise InputError(f"{where}: the file is empty (not even a header row)")
    header = next(csv.reader([line]))
    unique_columns(header, where)
    return header


def unique_columns(names: Sequence[str], where: str) -> None:
    """A column named twice (in a CSV header or a Parquet schema) is an error naming both positions."""
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise InputError(
                f'{where}: column "{shown(name)}" appears twice (columns {seen[name]} and {position}); '
                "each column must appear once"
            )
        seen[name] = position
