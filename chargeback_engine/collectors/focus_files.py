"""The ``focus-files`` collector: FOCUS 1.0-1.2 cost files (CSV or Parquet) as cost tables.

Reading is columnar from end to end: pyarrow reads the file (CSV cells as text, so no
amount ever passes through a float), one DuckDB query over the Arrow columns converts and
checks the columns that need it, and the rest pass through untouched. Every problem is
found in that same pass, so a bad file is reported in full (file, row, column and what is
wrong) and never yields a partial table.

Conversion rules, in one place:

- Money from text is exact: the cell's decimal digits, at most 10 after the point (the
  ledger's scale); more is an error, never a silent rounding. Parquet doubles go through
  their shortest round-trip text (what ``repr`` prints), then to 10 digits after the
  point, rounding half to even, like every collector (``collecting.to_money``); what
  that moved is reported in the source's ``details["rounding"]``.
- Quantities are read the same way but rounded to 10 digits after the point.
- Timestamps are ISO 8601; a value without an offset is UTC.
- ``Tags`` must be a JSON object without repeated keys; it is rewritten as compact JSON
  whose values are all strings. Strings stay as written; numbers keep the text the
  provider wrote (``4711`` -> ``"4711"``, ``1.50`` -> ``"1.50"``); booleans become
  ``"true"``/``"false"``; arrays and objects become their compact JSON text; a ``null``
  value means the tag is absent. Keys are kept as written: normalising them is the
  policy's job.
- An empty cell is null.
"""

from __future__ import annotations

import csv
import functools
import glob
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import structlog

from chargeback_engine.collecting import Rounding, report_progress, to_money
from chargeback_engine.components import CollectedSource
from chargeback_engine.errors import InputError
from chargeback_engine.focus import (
    COST_TABLE_SCHEMA,
    ENCODED_TEXT,
    MONEY_COLUMNS,
    REQUIRED_COLUMNS,
    conform,
    read_parquet_columns,
)
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.money import LEDGER_SCALE
from chargeback_engine.periods import Period

log = structlog.get_logger()

NAME = "focus-files"
FORMATS = ("csv", "parquet")

#: Columns renamed between FOCUS releases: older (or newer) name -> the name we use.
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

_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")
_KNOWN = {f.name for f in COST_TABLE_SCHEMA if not f.name.startswith("x_")}
_QUANTITY_COLUMNS = tuple(f.name for f in COST_TABLE_SCHEMA
                          if pa.types.is_decimal(f.type) and f.name not in MONEY_COLUMNS)
_TIMESTAMP_COLUMNS = tuple(f.name for f in COST_TABLE_SCHEMA if pa.types.is_timestamp(f.type))
_TEXT_COLUMNS = frozenset(f.name for f in COST_TABLE_SCHEMA if pa.types.is_string(f.type))
_DECIMAL = f"DECIMAL(38, {LEDGER_SCALE})"

CONFIG_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "FOCUS cost files: CSV or Parquet files, directories of them, or glob patterns.",
    "additionalProperties": False,
    "oneOf": [{"required": ["path"]}, {"required": ["paths"]}],
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "description": "A file, a directory (read recursively) or a glob pattern (** allowed).",
        },
        "paths": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
            "description": "Several files, directories or glob patterns.",
        },
        "format": {
            "enum": ["auto", *FORMATS],
            "default": "auto",
            "description": "auto decides by file suffix (.csv, .csv.gz, .parquet, .pq), then by content.",
        },
    },
}


class FocusFilesCollector:
    """Reads FOCUS files; one :class:`CollectedSource` per file, in path order."""

    name = NAME
    config_schema = CONFIG_SCHEMA

    def collect(self, config: Mapping[str, Any], period: Period | None = None) -> Iterator[CollectedSource]:
        """Yield each file's cost table. ``period`` is not used to filter: a file holds what it holds."""
        given = [config["path"]] if "path" in config else list(config["paths"])
        paths = expand_paths(given)
        sources = []
        for done, path in enumerate(paths, start=1):
            sources.append(read_focus_file(path, config.get("format", "auto")))
            report_progress(f"reading {Path(path).name}", done, len(paths))
        if not any(s.table.num_rows for s in sources):
            raise InputError(f"no line items in {', '.join(given)}: every file is empty")
        yield from sources


@hookimpl
def chargeback_register_collectors(register) -> None:  # type: ignore[no-untyped-def]
    register(FocusFilesCollector())


def expand_paths(paths: Sequence[str]) -> list[str]:
    """Files as given, directories (recursively) and globs, each sorted; a path that finds nothing is an error."""
    files: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            found = [given]
        elif path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and _format_by_suffix(p) is not None)
            if not found:
                raise InputError(f"{given}: directory holds no .csv or .parquet files")
        elif glob.has_magic(given):
            found = sorted(p for p in glob.glob(given, recursive=True) if Path(p).is_file())
            if not found:
                raise InputError(f"{given}: no file matches this pattern")
        else:
            raise InputError(f"{given}: no such file or directory")
        files.extend(f for f in found if f not in files)
    return files


def currencies(table: pa.Table) -> list[str]:
    """The distinct billing currencies of a cost table, sorted."""
    return sorted(c for c in table["BillingCurrency"].unique().to_pylist() if c is not None)


def read_focus_file(path: str, fmt: str = "auto") -> CollectedSource:
    """Read one FOCUS file into a cost table; ``path`` is kept as given, as ``x_SourceId``."""
    fmt = fmt if fmt != "auto" else _detect_format(Path(path))
    digest = _sha256(path)
    raw = _read_csv(path) if fmt == "csv" else _read_parquet(path)
    rounding = Rounding()
    table = to_cost_table(raw, path, rounding)
    found = currencies(table)
    log.info("focus file read", path=path, format=fmt, rows=table.num_rows, currencies=found)
    details = {"path": path, "format": fmt, "sha256": digest.removeprefix("sha256:"),
               "rows": table.num_rows, "currencies": found}
    if rounding.by_column:
        details["rounding"] = rounding.as_details()
    return CollectedSource(source_id=path, table=table, version=digest, details=details)


def _format_by_suffix(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes.pop()
    return _SUFFIXES.get(suffixes[-1]) if suffixes else None


def _detect_format(path: Path) -> str:
    by_suffix = _format_by_suffix(path)
    if by_suffix:
        return by_suffix
    with path.open("rb") as f:
        return "parquet" if f.read(4) == b"PAR1" else "csv"


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _canonical_names(path: str, names: Iterable[str]) -> dict[str, str]:
    """Map the file's column names to ours; a current name wins over its older alias."""
    present = list(names)
    mapping: dict[str, str] = {}
    for name in present:
        target = COLUMN_ALIASES.get(name, name)
        if target in _KNOWN and not (name != target and target in present):
            mapping[name] = target
    missing = [c for c in (*REQUIRED_COLUMNS, *NOT_NULL_MONEY) if c not in mapping.values()]
    if missing:
        raise InputError(f"{path}: missing FOCUS column(s) {', '.join(missing)}; the file has {', '.join(present) or 'no columns'}")
    return mapping


def _read_csv(path: str) -> pa.Table:
    """Every cell as text (so money stays exact), text columns dictionary-encoded as
    :func:`_read_parquet` reads them; only FOCUS columns are kept."""
    header = _csv_header(path)
    mapping = _canonical_names(path, header)
    convert = pacsv.ConvertOptions(
        column_types={name: ENCODED_TEXT if target in _TEXT_COLUMNS else pa.string() for name, target in mapping.items()},
        include_columns=list(mapping),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(path, convert_options=convert,
                               parse_options=pacsv.ParseOptions(newlines_in_values=True))
    except pa.ArrowInvalid as exc:
        raise InputError(_locate_csv_problem(path, convert) or f"{path}: {exc}") from exc
    return table.rename_columns([mapping[n] for n in table.column_names])


def _csv_header(path: str) -> list[str]:
    with pa.input_stream(path, compression="detect") as stream:
        first = stream.read(1 << 16).decode("utf-8-sig", errors="replace")
    if not first.strip():
        raise InputError(f"{path}: the file is empty (not even a header row)")
    return next(csv.reader(io.StringIO(first)))


def _locate_csv_problem(path: str, convert: pacsv.ConvertOptions) -> str | None:
    """Re-read on one thread, which numbers rows, to name every malformed row."""
    problems: list[str] = []

    def record(row: pacsv.InvalidRow) -> str:
        problems.append(f"{path}: row {row.number - 1}: expected {row.expected_columns} fields, "
                        f"found {row.actual_columns}")
        return "skip"

    try:
        pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=False), convert_options=convert,
                       parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=record))
    except pa.ArrowInvalid as exc:
        problems.append(f"{path}: {exc}")
    return _summarise(problems) if problems else None


def _read_parquet(path: str) -> pa.Table:
    """Text columns are read dictionary-encoded: a month has far fewer distinct services,
    accounts, resources and tag sets than lines, so this halves the memory and the time.

    Column by column, each into one chunk, as the data plane holds line items
    (:func:`~chargeback_engine.focus.read_parquet_columns`)."""
    try:
        schema = pq.read_schema(path)
        mapping = _canonical_names(path, schema.names)
        text = {n for n, ours in mapping.items() if ours in _TEXT_COLUMNS and pa.types.is_string(schema.field(n).type)}
        return read_parquet_columns(path, mapping, text)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc


def to_cost_table(raw: pa.Table, source_id: str, rounding: Rounding | None = None) -> pa.Table:
    """Turn FOCUS columns as read (text, doubles, decimals, timestamps) into a cost table.

    The rules are the module's. Columns of the right type pass through untouched (large
    string columns are never copied); the others go through one DuckDB query, which also
    yields, per row, what is wrong with it; ``Tags`` are converted once per distinct value.
    Doubles are made exact by :func:`chargeback_engine.collecting.to_money`, the rule every
    collector shares; what its rounding moved is added to ``rounding``. Rows are numbered
    from 1 in ``x_SourceRow``. Every problem found raises one :class:`InputError` naming
    ``source_id``, the row and the column.
    """
    raw = raw.append_column("x_SourceRow", pa.array(np.arange(1, raw.num_rows + 1, dtype=np.int64)))
    columns = {name: raw[name] for name in raw.column_names}
    expressions, checks, problems = [], [], []
    for field in COST_TABLE_SCHEMA:
        if field.name not in columns or field.name.startswith("x_"):
            continue
        column = columns[field.name]
        if field.name == "Tags":
            columns["Tags"], bad = _convert_tags(column)
            problems += _problem_rows(raw, bad)
        elif field.name == "BillingCurrency":
            if column.type != ENCODED_TEXT:  # encoded text stays encoded, as every text column
                columns[field.name] = column = column.cast(pa.string())
            problems += _problem_rows(raw, _missing_values(field.name, column))
            problems += _problem_rows(raw, _currency_problems(column))
        elif column.type == field.type or (column.type == ENCODED_TEXT and pa.types.is_string(field.type)):
            problems += _problem_rows(raw, _missing_values(field.name, column))
        elif pa.types.is_floating(column.type):
            columns[field.name] = to_money(column, column=field.name, where=source_id, rounding=rounding or Rounding())
            problems += _problem_rows(raw, _missing_values(field.name, column))
        else:
            converted, problem = _conversion(field.name, column.type)
            if converted is not None:
                expressions.append(f'{converted} AS "{field.name}"')
            if problem is not None:
                checks.append(problem)
    if expressions or checks:
        problem = f"NULLIF(concat_ws('; ', {', '.join(checks)}), '')" if checks else "NULL"
        converted = _duckdb_select(raw.select([n for n in raw.column_names if n != "Tags"]),
                                   [*expressions, f"{problem} AS _problem"])
        problems += _problem_rows(raw, converted["_problem"])
        columns.update({name: converted[name] for name in converted.column_names if name != "_problem"})
    if problems:
        raise InputError(_summarise([f"{source_id}: row {row}: {text}" for row, text in sorted(problems)]))
    columns["x_SourceId"] = pa.DictionaryArray.from_arrays(pa.array(np.zeros(raw.num_rows, np.int32)),
                                                           pa.array([source_id]))
    return conform(pa.table(columns))


_NOT_NULL = (*REQUIRED_COLUMNS, *NOT_NULL_MONEY)
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


def _missing_values(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    if name not in _NOT_NULL or not column.null_count:
        return pa.nulls(0, pa.string())
    return pc.if_else(pc.is_null(column), f"{name}: is missing", None)


def _currency_problems(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Checked once per distinct value: a month has a handful of currencies, not millions."""
    invalid = [c for c in column.unique().drop_null().to_pylist() if not _CURRENCY_CODE.fullmatch(c)]
    if not invalid:
        return pa.nulls(0, pa.string())
    text = pc.binary_join_element_wise('BillingCurrency: "', pc.utf8_slice_codeunits(column.cast(pa.string()), 0, 60),
                                       '" is not an ISO 4217 currency code', "")
    return pc.if_else(pc.is_in(column, pa.array(invalid)), text, None)


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process, used only to compute; opening one costs ~70 ms."""
    return duckdb.connect()


def _duckdb_select(table: pa.Table, expressions: list[str]) -> pa.Table:
    con = _database().cursor()  # a connection of its own, so concurrent reads do not share views
    try:
        con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")  # a library prints nothing
        con.register("raw", table)
        return con.sql(f"SELECT {', '.join(expressions)} FROM raw").to_arrow_table()
    finally:
        con.close()


def _problem_rows(raw: pa.Table, problem: pa.ChunkedArray | pa.Array) -> list[tuple[int, str]]:
    if problem.null_count == len(problem):
        return []
    bad = pc.is_valid(problem)
    return list(zip(raw["x_SourceRow"].filter(bad).to_pylist(), problem.filter(bad).to_pylist()))


def _convert_tags(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Apply the tag rule once per distinct tag object; each row keeps its index into the
    rewritten objects (the result stays dictionary-encoded), and its problem, if any.

    A month has far fewer distinct tag objects than lines (one per resource at most), so
    this is the one place where Python looks at values, and never once per line.
    """
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    encoded = encoded.unify_dictionaries()
    distinct = encoded.chunks[0].dictionary.to_pylist() if encoded.num_chunks else []
    values, problems = [], []
    for text in distinct:
        try:
            values.append(canonical_tags(text))
            problems.append(None)
        except ValueError as exc:
            values.append(None)
            problems.append(f'Tags: "{text[:60]}" {exc}')
    values_array, problems_array = pa.array(values, pa.string()), pa.array(problems, pa.string())
    indices = [chunk.indices for chunk in encoded.chunks]
    return (pa.chunked_array([pa.DictionaryArray.from_arrays(i, values_array) for i in indices], ENCODED_TEXT),
            pa.chunked_array([problems_array.take(i) for i in indices], pa.string()))


class _Number(str):
    """A JSON number, kept as the text the provider wrote."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"is not valid JSON ({name} is not a JSON number)")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"has the key {duplicate!r} more than once")
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


class _Object(list):
    """A parsed JSON object, as its (key, value) pairs in order."""


def canonical_tags(text: str) -> str:
    """The tag rule: a JSON object whose values are all strings; null values are dropped.

    Numbers keep the text the provider wrote (``1.50`` -> ``"1.50"``), ``true``/``false``
    become ``"true"``/``"false"``, arrays and objects become their compact JSON text.
    Raises ``ValueError`` (saying what is wrong) for anything that is not a JSON object.
    """
    try:
        parsed = json.loads(text, parse_int=_Number, parse_float=_Number, parse_constant=_reject_constant,
                            object_pairs_hook=lambda pairs: _Object(_unique_pairs(pairs)))
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
    if not isinstance(parsed, _Object):
        raise ValueError("is not a JSON object")  # noqa: TRY004 - a bad value, reported per row like the others
    tags = {k: v if isinstance(v, str) and not isinstance(v, _Number) else _json_text(v)
            for k, v in parsed if v is not None}
    return json.dumps(tags, ensure_ascii=False, separators=(",", ":"))


def _conversion(name: str, source: pa.DataType) -> tuple[str | None, str | None]:
    """SQL converting column ``name`` (of Arrow type ``source``), and SQL naming its problem."""
    col = f'"{name}"'
    missing = _missing(name, col) if name in _NOT_NULL else None
    if name in MONEY_COLUMNS or name in _QUANTITY_COLUMNS:
        return _number(name, col, source, missing)
    if name in _TIMESTAMP_COLUMNS:
        if pa.types.is_timestamp(source):
            return (f"{col}::TIMESTAMPTZ" if source.tz else f"timezone('UTC', {col})"), missing
        value = f"TRY_CAST({col} AS TIMESTAMPTZ)"
        bad = f"CASE WHEN {col} IS NOT NULL AND {value} IS NULL THEN '{name}: ' || {_quoted(col)} || ' is not an ISO 8601 date-time' END"
        return value, _either(bad, missing)
    return f"{col}::VARCHAR", missing


def _number(name: str, col: str, source: pa.DataType, missing: str | None) -> tuple[str, str | None]:
    if pa.types.is_decimal(source) or pa.types.is_integer(source):
        value = f"TRY_CAST({col} AS {_DECIMAL})"
        bad = f"CASE WHEN {col} IS NOT NULL AND {value} IS NULL THEN '{name}: ' || {col}::VARCHAR || ' is out of range' END"
        if name in MONEY_COLUMNS and pa.types.is_decimal(source) and source.scale > LEDGER_SCALE:
            bad = _either(bad, f"CASE WHEN {value} <> {col} THEN '{name}: ' || {col}::VARCHAR || "
                               f"' has more than {LEDGER_SCALE} digits after the point' END")
        return value, _either(bad, missing)
    text = f"trim({col}::VARCHAR)"
    value = f"TRY_CAST({text} AS {_DECIMAL})"
    bad = f"CASE WHEN {col} IS NOT NULL AND {value} IS NULL THEN '{name}: ' || {_quoted(col)} || ' is not a decimal number' END"
    if name in MONEY_COLUMNS:
        # A non-zero digit beyond the ledger's scale would be rounded away: refuse it.
        rounded = (f"CASE WHEN contains(lower({text}), 'e') THEN TRY_CAST({text} AS DECIMAL(38, 20)) <> {value} "
                   f"ELSE regexp_matches({text}, '[.][0-9]{{{LEDGER_SCALE}}}[0-9]*[1-9]') END")
        bad = _either(bad, f"CASE WHEN {rounded} THEN '{name}: ' || {_quoted(col)} || "
                           f"' has more than {LEDGER_SCALE} digits after the point' END")
    return value, _either(bad, missing)


def _missing(name: str, col: str) -> str:
    return f"CASE WHEN {col} IS NULL THEN '{name}: is missing' END"


def _either(*problems: str | None) -> str | None:
    """The first problem that applies (at most one per column and row)."""
    present = [p for p in problems if p]
    if not present:
        return None
    return present[0] if len(present) == 1 else f"coalesce({', '.join(present)})"


def _quoted(col: str) -> str:
    """The offending cell, quoted and shortened, for the message."""
    return f"'\"' || left({col}::VARCHAR, 60) || '\"'"


def _summarise(problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED]
    more = len(problems) - len(shown)
    return "\n".join(shown + ([f"... and {more} more problem(s)"] if more else []))
