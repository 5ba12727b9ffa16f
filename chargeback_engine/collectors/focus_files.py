"""The ``focus-files`` collector: FOCUS 1.0-1.2 cost files (CSV or Parquet) as cost tables.

Reading is columnar from end to end: pyarrow reads the file (CSV cells as text, so no
amount ever passes through a float), and :func:`chargeback_engine.normalise.normalise`,
the normaliser every collector shares, converts and checks the columns in one pass. So a
bad file is reported in full (file, row, column and what is wrong), never yields a partial
table, and reads exactly as the same file does from S3 or Blob storage.

What this module adds: finding the files, and refusing what cannot be read as a cost file
at all (UTF-16, a column named twice, corrupt compressed data, a FOCUS column missing),
each with its file named.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chargeback_engine.collect import report_progress
from chargeback_engine.components import CollectedSource, Collector
from chargeback_engine.durable_files import file_sha256
from chargeback_engine.errors import InputError
from chargeback_engine.focus import (
    COST_TABLE_SCHEMA,
    ENCODED_TEXT,
    REQUIRED_COLUMNS,
    read_parquet_columns,
)
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.logs import get_logger
from chargeback_engine.normalise import (
    COLUMN_ALIASES,
    NOT_NULL_MONEY,
    Rounding,
    csv_header,
    normalise,
    summarise,
    unique_columns,
)
from chargeback_engine.periods import Period

log = get_logger(__name__)

NAME = "focus-files"
FORMATS = ("csv", "parquet")

_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")
_KNOWN = {f.name for f in COST_TABLE_SCHEMA if not f.name.startswith("x_")}
_TEXT_COLUMNS = frozenset(f.name for f in COST_TABLE_SCHEMA if pa.types.is_string(f.type))

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

    def collect(self, config: Mapping[str, Any], period: Period) -> Iterator[CollectedSource]:
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
def chargeback_register_collectors(register: Callable[[Collector], None]) -> None:
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
    """Read one FOCUS file into a cost table; ``path`` is kept as given, as ``x_SourceId``.

    ``details["rounding"]`` holds what the normaliser rounded (:meth:`Rounding.as_details`).
    """
    fmt = fmt if fmt != "auto" else _detect_format(Path(path))
    digest = file_sha256(Path(path))
    raw = _read_csv(path) if fmt == "csv" else _read_parquet(path)
    rounding = Rounding()
    table = normalise(raw, source_id=path, rounding=rounding)
    found = currencies(table)
    log.info("focus file read", path=path, format=fmt, rows=table.num_rows, currencies=found)
    details = {
        "path": path,
        "format": fmt,
        "sha256": digest.removeprefix("sha256:"),
        "rows": table.num_rows,
        "currencies": found,
        "rounding": rounding.as_details(),
    }
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


def _canonical_names(path: str, names: Iterable[str]) -> dict[str, str]:
    """Map the file's column names to ours; a current name wins over its older alias."""
    present = list(names)
    unique_columns(present, path)
    mapping: dict[str, str] = {}
    for name in present:
        target = COLUMN_ALIASES.get(name, name)
        if target in _KNOWN and not (name != target and target in present):
            mapping[name] = target
    missing = [c for c in (*REQUIRED_COLUMNS, *NOT_NULL_MONEY) if c not in mapping.values()]
    if missing:
        raise InputError(
            f"{path}: missing FOCUS column(s) {', '.join(missing)}; the file has {', '.join(present) or 'no columns'}"
        )
    return mapping


def _read_csv(path: str) -> pa.Table:
    """Every cell as text (so money stays exact), text columns dictionary-encoded as
    :func:`_read_parquet` reads them; only FOCUS columns are kept."""
    header = _csv_header(path)
    mapping = _canonical_names(path, header)
    convert = pacsv.ConvertOptions(
        column_types={
            name: ENCODED_TEXT if target in _TEXT_COLUMNS else pa.string() for name, target in mapping.items()
        },
        include_columns=list(mapping),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(path, convert_options=convert, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    except pa.ArrowInvalid as exc:
        raise InputError(_locate_csv_problem(path, convert) or f"{path}: {exc}") from exc
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    return table.rename_columns([mapping[n] for n in table.column_names])


def _csv_header(path: str) -> list[str]:
    try:
        with pa.input_stream(path, compression="detect") as stream:
            head = stream.read(1 << 16)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    return csv_header(head, path)


def _unreadable(path: str, exc: OSError) -> InputError:
    """Decompression fails with an OSError too: say which it is."""
    if _format_by_suffix(Path(path)) and Path(path).suffix.lower() in _COMPRESSIONS:
        return InputError(
            f"{path}: the compressed data is corrupt or truncated ({exc}); fetch or compress the file again"
        )
    return InputError(f"{path}: cannot be read ({exc})")


def _locate_csv_problem(path: str, convert: pacsv.ConvertOptions) -> str | None:
    """Re-read on one thread, which numbers rows, to name every malformed row."""
    problems: list[str] = []

    def record(row: pacsv.InvalidRow) -> str:
        problems.append(
            f"{path}: row {row.number - 1}: expected {row.expected_columns} fields, found {row.actual_columns}"
        )
        return "skip"

    try:
        pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=convert,
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=record),
        )
    except pa.ArrowInvalid as exc:
        problems.append(f"{path}: {exc}")
    return summarise(problems) if problems else None


def _read_parquet(path: str) -> pa.Table:
    """Text columns are read dictionary-encoded: a month has far fewer distinct services,
    accounts, resources and tag sets than lines, so this halves the memory and the time.

    Column by column, each into one chunk, as the data plane holds line items
    (:func:`~chargeback_engine.focus.read_parquet_columns`)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    mapping = _canonical_names(path, schema.names)
    text = {n for n, ours in mapping.items() if ours in _TEXT_COLUMNS and pa.types.is_string(schema.field(n).type)}
    try:
        return read_parquet_columns(path, mapping, text)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
