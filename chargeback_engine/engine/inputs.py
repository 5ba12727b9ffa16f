"""A run's inputs: collected sources, combined into one cost table, each read once.

Every input reaches the run as a collector's :class:`CollectedSource`: paths through the
``focus-files`` collector (in one call, so it expands and de-duplicates them), tables as
they are, and the policy's ``sources:`` through their collectors. What the manifest says
of an input is what its collector said, never a second look at the paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chargeback_engine.components import CollectedSource, Collector
from chargeback_engine.durable_files import file_sha256, table_sha256
from chargeback_engine.engine.result import InputInfo
from chargeback_engine.engine.store import one_chunk
from chargeback_engine.errors import InputError
from chargeback_engine.focus import conform, encoded
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.logs import get_logger
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registered, plugin_fault, reported

log = get_logger(__name__)

#: The collector that reads FOCUS CSV/Parquet files, directories and globs.
FILE_COLLECTOR = "focus-files"

Input: TypeAlias = "str | Path | pa.Table | CollectedSource"
#: Runs a named collector on one configuration (the engine's, which reports plugin failures).
Collect = Callable[[str, Mapping[str, Any]], list[CollectedSource]]


def collect(
    inputs: Iterable[Input], sources: Iterable[Mapping[str, Any]], collect_from: Collect
) -> list[CollectedSource]:
    """Every source of a run, in order: the given inputs, then the policy's ``sources:``.

    A source whose content another one already brought (the same file named twice, through
    a symlink, or inside a folder also named) is read once: the second is left out and
    logged.
    """
    collected: list[CollectedSource] = []
    paths: list[str] = []
    for item in inputs:
        if isinstance(item, CollectedSource):
            collected.append(item)
        elif isinstance(item, pa.Table):
            source_id = (
                item["x_SourceId"][0].as_py() if item.num_rows and "x_SourceId" in item.column_names else "table"
            )
            collected.append(CollectedSource(source_id, item, table_sha256(item)))
        else:
            paths.append(str(item))
    if paths:
        collected[:0] = collect_from(FILE_COLLECTOR, {"paths": paths})
    for entry in sources:
        name: Any = entry.get("collector") or entry.get("type")  # as written: the schema requires collector
        collected.extend(collect_from(name, entry))
    return _read_once(collected)


def run_collector(
    registered: Registered[Collector], name: str, config: Mapping[str, Any], period: Period
) -> list[CollectedSource]:
    """What one collector returns, held to its contract: ``CollectedSource`` objects whose
    tables read as the cost table. A breach names the collector and its plugin here, not
    as a stray exception when the sources are combined."""
    with reported("collector", registered, name):
        sources = list(registered.component.collect(config, period))
    for source in sources:
        if not isinstance(source, CollectedSource) or not isinstance(source.table, pa.Table):
            what = type(source.table if isinstance(source, CollectedSource) else source).__name__
            raise plugin_fault("collector", registered, name, f"returned a {what} where a CollectedSource belongs")
        try:
            conform(source.table)
        except (pa.ArrowException, KeyError, TypeError, ValueError) as exc:
            raise plugin_fault(
                "collector", registered, name, f"returned source {source.source_id!r} whose {exc}"
            ) from None
    return sources


def _read_once(sources: list[CollectedSource]) -> list[CollectedSource]:
    seen: dict[str, str] = {}
    unique = []
    for source in sources:
        digest = content_sha256(source)
        if digest in seen:
            log.warning("input.duplicate", source=source.source_id, same_as=seen[digest])
            continue
        seen[digest] = source.source_id
        unique.append(source)
    return unique


def content_sha256(source: CollectedSource) -> str:
    """``sha256:`` of what a source holds: the file's bytes when a collector read a file,
    else the table's."""
    digest = source.details.get("sha256") if isinstance(source.details, Mapping) else None
    return f"sha256:{digest}" if digest else table_sha256(source.table)


def manifest_entry(source: CollectedSource) -> InputInfo:
    """A source as the manifest lists it."""
    path = source.details.get("path") if isinstance(source.details, Mapping) else None
    return InputInfo(
        source.source_id,
        content_sha256(source),
        source.table.num_rows,
        path=path,
        version=None if path else source.version,
        details={} if path else source.details,
    )


def read_carried(paths: Iterable[str | Path], period: Period) -> tuple[pa.Table, list[InputInfo]]:
    """This period's parts of earlier runs' amortization schedules, each file read once
    however it is named."""
    tables, infos, seen = [LEDGER_SCHEMA.empty_table()], [], set()
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"{path}: schedule not found")
        digest = file_sha256(path)
        if digest in seen:
            log.warning("carry.duplicate", path=str(path))
            continue
        seen.add(digest)
        try:
            table = pq.read_table(path).select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA)
        except (pa.ArrowException, KeyError, ValueError) as exc:
            raise InputError(f"{path}: not an amortization schedule: {exc}") from None
        due = table.filter(pc.equal(table["period"], str(period)))
        tables.append(due)
        infos.append(InputInfo(f"schedule:{path}", digest, due.num_rows, path=str(path)))
    return pa.concat_tables(tables), infos


def combine(sources: list[CollectedSource]) -> pa.Table:
    """The sources' line items as one table, each column in one chunk, as the data plane
    holds them. ``sources`` is emptied, and each column of each source let go as soon as
    it is combined: a month read from many files is never held twice."""
    tables = [_with_provenance(conform(s.table), s.source_id) for s in sources]
    sources.clear()
    if not tables or sum(t.num_rows for t in tables) == 0:
        raise InputError("no line items: the inputs are empty")
    if any(not t.schema.equals(tables[0].schema) for t in tables):  # text held two ways: encode it
        tables = [encoded(t) for t in tables]
    schema, columns = tables[0].schema, []
    for name in schema.names:
        columns.append(
            one_chunk(pa.chunked_array([c for t in tables for c in t[name].chunks], schema.field(name).type))
        )
        tables = [t.drop_columns([name]) for t in tables]
    return pa.Table.from_arrays(columns, schema=schema)


def _with_provenance(table: pa.Table, source_id: str) -> pa.Table:
    """Every line must name its source and row; fill what a collector left empty."""
    if table["x_SourceId"].null_count:
        table = table.set_column(
            table.schema.get_field_index("x_SourceId"), "x_SourceId", pc.fill_null(table["x_SourceId"], source_id)
        )
    if table["x_SourceRow"].null_count:
        rows = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
        table = table.set_column(
            table.schema.get_field_index("x_SourceRow"), "x_SourceRow", pc.coalesce(table["x_SourceRow"], rows)
        )
    return table
