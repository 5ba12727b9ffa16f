"""The built-in file exporters: ledger, summary, FOCUS with allocation columns, audit trail.

All are deterministic (sorted rows, fixed writer settings), so a rerun is byte-identical.
CSV text cells that a spreadsheet would run as a formula get a leading ``'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_engine.engine.runner import RunResult
from chargeback_engine.engine.store import LEDGER_ORDER, LINE
from chargeback_engine.focus import MONEY
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.ledger import LEDGER_SCHEMA

#: Leading characters that make spreadsheets evaluate a cell (CSV/formula injection).
_FORMULA_START = "^[=+\\-@\t\r]"

_PARQUET = "FORMAT parquet, COMPRESSION zstd"
_CSV = "HEADER, DELIMITER ','"


def write_parquet(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path, compression="zstd", write_statistics=True)
    return path


def defused(query: str, schema: pa.Schema) -> str:
    """``query`` with text cells that start like a formula prefixed by ``'``; numbers, dates
    and amounts pass through untouched."""
    columns = []
    for field in schema:
        name = '"' + field.name.replace('"', '""') + '"'
        if pa.types.is_string(field.type):
            columns.append(f"CASE WHEN regexp_matches({name}, '{_FORMULA_START}') THEN concat(chr(39), {name}) "
                           f"ELSE {name} END AS {name}")
        else:
            columns.append(name)
    return f"SELECT {', '.join(columns)} FROM ({query})"


class _FileExporter:
    options_schema: dict[str, Any] = {"type": "object", "additionalProperties": False}


class AllocationsExporter(_FileExporter):
    """``allocations.parquet`` and ``allocations.csv``: the ledger of the run period.

    Both stream from the run's store (DuckDB's CSV writer: plain decimals, never exponents;
    UTC timestamps; quotes only where needed; formula-like text defused)."""

    name = "allocations"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        query = result.ledger_query(result.in_period)
        return [result.store.copy(query, directory / "allocations.parquet", _PARQUET),
                result.store.copy(defused(query, LEDGER_SCHEMA), directory / "allocations.csv", _CSV)]


class ScheduleExporter(_FileExporter):
    """``schedule.parquet``: amortization parts that later periods receive."""

    name = "schedule"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        return [result.store.copy(result.ledger_query(result.later), directory / "schedule.parquet", _PARQUET)]


class DecisionsExporter(_FileExporter):
    """``decisions.parquet``: the audit trail, one row per decision."""

    name = "decisions"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        return [write_parquet(result.decisions, directory / "decisions.parquet")]


class SummaryExporter(_FileExporter):
    """``summary.csv``: cost_center,currency,amount for the run period."""

    name = "summary"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        return [result.store.copy(defused(result.summary_query(), _SUMMARY), directory / "summary.csv", _CSV)]


_SUMMARY = pa.schema([("cost_center", pa.string()), ("currency", pa.string()), ("amount", MONEY)])


class FocusAllocatedExporter(_FileExporter):
    """``focus_allocated.parquet``: the input FOCUS columns, one row per allocation, with the
    policy's cost column set to the allocated amount and the FOCUS 1.3 allocation columns."""

    name = "focus-allocated"

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        """Joined and written by DuckDB in one streaming COPY, in ledger order."""
        cost = '"' + result.policy.cost_column.replace('"', '""') + '"'
        query = f"""
            SELECT r.* EXCLUDE ({LINE}) REPLACE (l.amount AS {cost}),
                   l.method AS AllocatedMethodId,
                   json_object('decision_id', l.decision_id, 'stage', l.stage, 'category', l.category,
                               'from_cost_center', l.from_cost_center, 'period', l.period) AS AllocatedMethodDetails,
                   l.cost_center AS x_CostCenterId, l.rule_id AS x_AllocationRuleId,
                   l.policy_version AS x_PolicyVersion, l.decision_id AS x_DecisionId
            FROM ledger l JOIN records r ON r.{LINE} = l.{LINE}
            WHERE l.{result.in_period}
            ORDER BY {", ".join("l." + c.strip() for c in LEDGER_ORDER.split(","))}
        """
        return [result.store.copy(query, directory / "focus_allocated.parquet", _PARQUET)]


@hookimpl
def chargeback_register_exporters(register) -> None:  # type: ignore[no-untyped-def]
    for exporter in (AllocationsExporter(), SummaryExporter(), FocusAllocatedExporter(), DecisionsExporter(),
                     ScheduleExporter()):
        register(exporter)
