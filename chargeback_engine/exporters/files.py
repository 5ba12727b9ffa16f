"""The built-in file exporters: ledger, summary, FOCUS with allocation columns, audit trail.

All are deterministic (sorted rows, fixed writer settings), so a rerun is byte-identical.
CSV text cells that a spreadsheet would run as a formula get a leading ``'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_engine.engine.runner import RunResult
from chargeback_engine.focus import COST_TABLE_SCHEMA
from chargeback_engine.hookspecs import hookimpl

#: Leading characters that make spreadsheets evaluate a cell (CSV/formula injection).
_FORMULA_START = "^[=+\\-@\t\r]"


def write_parquet(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path, compression="zstd", write_statistics=True)
    return path


def _defused(table: pa.Table) -> str:
    """The select list that prefixes text cells starting like a formula with ``'``; numbers,
    dates and amounts pass through untouched."""
    columns = []
    for field in table.schema:
        name = '"' + field.name.replace('"', '""') + '"'
        if pa.types.is_string(field.type):
            columns.append(f"CASE WHEN regexp_matches({name}, '{_FORMULA_START}') THEN concat(chr(39), {name}) "
                           f"ELSE {name} END AS {name}")
        else:
            columns.append(name)
    return ", ".join(columns)


def write_csv(table: pa.Table, path: Path) -> Path:
    """DuckDB's CSV writer, streaming from Arrow: plain decimals (never exponents), UTC
    timestamps, quotes only where needed, formula-like text defused."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("csv_rows", table)
    con.execute(f"COPY (SELECT {_defused(table)} FROM csv_rows) TO '{_sql_text(str(path))}' (HEADER, DELIMITER ',')")
    con.close()
    return path


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


class _FileExporter:
    options_schema: dict[str, Any] = {"type": "object", "additionalProperties": False}


class AllocationsExporter(_FileExporter):
    """``allocations.parquet`` and ``allocations.csv``: the ledger of the run period."""

    name = "allocations"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        return [write_parquet(result.allocations, directory / "allocations.parquet"),
                write_csv(result.allocations, directory / "allocations.csv")]


class ScheduleExporter(_FileExporter):
    """``schedule.parquet``: amortization parts that later periods receive."""

    name = "schedule"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        return [write_parquet(result.schedule, directory / "schedule.parquet")]


class DecisionsExporter(_FileExporter):
    """``decisions.parquet``: the audit trail, one row per decision."""

    name = "decisions"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        return [write_parquet(result.decisions, directory / "decisions.parquet")]


class SummaryExporter(_FileExporter):
    """``summary.csv``: cost_center,currency,amount for the run period."""

    name = "summary"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        rows = result.summary()
        table = pa.table({
            "cost_center": pa.array([r[0] for r in rows], pa.string()),
            "currency": pa.array([r[1] for r in rows], pa.string()),
            "amount": pa.array([r[2] for r in rows], COST_TABLE_SCHEMA.field("BilledCost").type),
        })
        return [write_csv(table, directory / "summary.csv")]


class FocusAllocatedExporter(_FileExporter):
    """``focus_allocated.parquet``: the input FOCUS columns, one row per allocation, with the
    policy's cost column set to the allocated amount and the FOCUS 1.3 allocation columns."""

    name = "focus-allocated"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        """Joined and written by DuckDB in one streaming COPY, in ledger order."""
        path = directory / "focus_allocated.parquet"
        ledger = result.allocations
        con = duckdb.connect()
        con.register("ledger", ledger.append_column("_n", pa.array(range(ledger.num_rows), pa.int64())))
        con.register("records", result.records)
        cost = '"' + result.policy.cost_column + '"'
        con.execute(f"""
            COPY (
                SELECT r.* REPLACE (l.amount AS {cost}),
                       l.method AS AllocatedMethodId,
                       json_object('decision_id', l.decision_id, 'stage', l.stage, 'category', l.category,
                                   'from_cost_center', l.from_cost_center, 'period', l.period) AS AllocatedMethodDetails,
                       l.cost_center AS x_CostCenterId, l.rule_id AS x_AllocationRuleId,
                       l.policy_version AS x_PolicyVersion, l.decision_id AS x_DecisionId
                FROM ledger l JOIN records r ON r.x_SourceId = l.source_id AND r.x_SourceRow = l.source_row
                ORDER BY l._n
            ) TO '{_sql_text(str(path))}' (FORMAT parquet, COMPRESSION zstd)
        """)
        con.close()
        return [path]


@hookimpl
def chargeback_register_exporters(register) -> None:  # type: ignore[no-untyped-def]
    for exporter in (AllocationsExporter(), SummaryExporter(), FocusAllocatedExporter(), DecisionsExporter(),
                     ScheduleExporter()):
        register(exporter)
