"""A minimal FOCUS CSV collector for engine tests, standing in for ``focus-files``.

It reads every cell as text with DuckDB and lets ``conform`` cast, so money stays exact.
Only tests use it; the product reads files through the ``focus-files`` collector plugin.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from chargeback_engine import hookimpl
from chargeback_engine.components import CollectedSource
from chargeback_engine.focus import COST_TABLE_SCHEMA, conform
from chargeback_engine.periods import Period


def read_focus_csv(path: str | Path) -> pa.Table:
    con = duckdb.connect()
    table = con.sql("SELECT * FROM read_csv(?, all_varchar = true, header = true)", params=[str(path)]).to_arrow_table()
    con.close()
    columns = {}
    for name in table.column_names:
        if name in COST_TABLE_SCHEMA.names:
            target = COST_TABLE_SCHEMA.field(name).type
            column = table[name]
            if pa.types.is_timestamp(target):
                column = pa.compute.strptime(column, "%Y-%m-%dT%H:%M:%SZ", "us").cast(pa.timestamp("us", tz="UTC"))
            columns[name] = column
    columns["x_SourceId"] = pa.array([str(path)] * table.num_rows)
    columns["x_SourceRow"] = pa.array(range(1, table.num_rows + 1), pa.int64())
    return conform(pa.table(columns))


class CsvFiles:
    name = "focus-files"
    config_schema: Mapping[str, Any] = {"type": "object", "properties": {"path": {"type": "string"}}}

    def collect(self, config: Mapping[str, Any], period: Period | None) -> Iterator[CollectedSource]:
        yield CollectedSource(str(config["path"]), read_focus_csv(config["path"]), "test")


@hookimpl
def chargeback_register_collectors(register) -> None:  # type: ignore[no-untyped-def]
    register(CsvFiles())
