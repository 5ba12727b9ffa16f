"""The reading layer: stored periods and business metrics in, facts and tables out.

Stored periods are run output directories, one per period, as ``chargeback run --out``
writes them: ``ROOT/YYYY-MM/allocations.parquet`` (the ledger) and, when present,
``ROOT/YYYY-MM/focus_allocated.parquet`` (the source FOCUS lines, for tagging compliance;
with the run's ``manifest.json``, for the dashboard's tag-compliance section).
Business metrics (drivers such as transactions, and headcount) are a CSV file with the
columns ``period,cost_center,metric,value``; an empty cost center means the whole company.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from chargeback_engine.errors import InputError, PeriodError
from chargeback_engine.insight.facts import Facts, ledger_facts
from chargeback_engine.insight.kpis import Metric
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.periods import Period
from chargeback_engine.sql_common import connect, sql_text

LEDGER_FILE = "allocations.parquet"
FOCUS_FILE = "focus_allocated.parquet"
#: The ledger columns insight reads; a stored ledger without one of them is rejected.
LEDGER_COLUMNS = (
    "period",
    "charge_period_start",
    "cost_center",
    "service_name",
    "amount",
    "currency",
    "stage",
    "from_cost_center",
    "category",
)
METRIC_COLUMNS = ("period", "cost_center", "metric", "value")


@dataclass(frozen=True)
class StoredPeriods:
    facts: Facts
    #: Per period: spend that reached the general ledger (known only from the cost database).
    journaled: dict[str, Decimal] = field(default_factory=dict)
    #: Cost centers in chargeback mode, when the source records modes.
    chargeback_cost_centers: frozenset[str] | None = None
    #: False when the source keeps only period totals (no daily series for anomalies and forecasts).
    daily: bool = True
    #: Cost-center names by id, when the source records them (the cost database does).
    names: dict[str, str] = field(default_factory=dict)
    #: Per period and cost center: the largest resources, (resource, amount), largest first.
    top_resources: dict[str, dict[str, list[tuple[str, Decimal]]]] = field(default_factory=dict)
    #: Per period: the run's output directory, when it holds what ``chargeback report tags`` reads.
    run_dirs: dict[str, Path] = field(default_factory=dict)


def read_run_directory(root: str | Path) -> StoredPeriods:
    """Read every ``YYYY-MM`` run directory under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory of stored periods")
    ledgers, buckets, top, run_dirs = [], set(), {}, {}
    for child in sorted(root.iterdir()):
        try:
            period = Period.parse(child.name)
        except PeriodError:
            continue
        ledger_path = child / LEDGER_FILE
        if not ledger_path.is_file():
            continue
        ledgers.append(_read_ledger(ledger_path))
        buckets |= _unallocated_bucket(child)
        top[str(period)] = _top_resources(ledger_path)
        if (child / FOCUS_FILE).is_file() and (child / "manifest.json").is_file():
            run_dirs[str(period)] = child
    if not ledgers:
        raise InputError(f"{root}: no stored periods (expected YYYY-MM/{LEDGER_FILE})")
    return StoredPeriods(ledger_facts(ledgers, buckets), top_resources=top, run_dirs=run_dirs)


#: Resources listed per cost center on its dashboard page.
TOP_RESOURCES = 10


def _top_resources(path: Path) -> dict[str, list[tuple[str, Decimal]]]:
    """Each cost center's largest resources in a stored ledger (lines without one count as ``(no resource)``)."""
    if "resource_id" not in pq.read_schema(path).names:
        return {}
    with connect() as con:
        rows = con.sql(f"""
            WITH totals AS (
                SELECT cost_center, coalesce(resource_id, '(no resource)') AS resource, sum(amount) AS amount
                FROM read_parquet({sql_text(str(path))}) GROUP BY 1, 2
            ), ranked AS (
                SELECT *, row_number() OVER (PARTITION BY cost_center ORDER BY abs(amount) DESC, resource) AS n FROM totals
            )
            SELECT cost_center, resource, amount FROM ranked WHERE n <= {TOP_RESOURCES} ORDER BY cost_center, n
        """).fetchall()
    top: dict[str, list[tuple[str, Decimal]]] = {}
    for cost_center, resource, amount in rows:
        top.setdefault(cost_center, []).append((resource, amount))
    return top


def _unallocated_bucket(run: Path) -> set[str]:
    """The policy's unallocated cost center, as the run's manifest records it (none in
    manifests written before it was recorded: then only unmatched lines mark the bucket)."""
    try:
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        raise InputError(f"{run / 'manifest.json'}: not a readable run manifest: {exc}") from None
    bucket = manifest.get("policy", {}).get("unallocated") if isinstance(manifest, dict) else None
    return {bucket} if isinstance(bucket, str) else set()


def _read_ledger(path: Path) -> pa.Table:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    missing = [c for c in LEDGER_COLUMNS if c not in schema.names]
    if missing:
        raise InputError(f"{path}: ledger column {missing[0]!r} is missing")
    table = pq.read_table(path, columns=list(LEDGER_COLUMNS))
    try:
        return table.cast(pa.schema([LEDGER_SCHEMA.field(c) for c in LEDGER_COLUMNS]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{path}: ledger columns do not have the ledger's types: {exc}") from exc


def read_cost_database(url: str | None = None) -> StoredPeriods:
    """Stored periods from the finance cost database: each period's current run plus its adjustments.

    The database keeps amounts per period, not per day, so facts from it fall on each
    period's first day: enough for reports and KPIs; anomalies and forecasts need the
    daily run outputs (:func:`read_run_directory`). Journaled spend is the subtotal of the
    invoices that the period's current journal batches post.
    """
    from chargeback_engine.costdb import tables as t
    from chargeback_engine.costdb.connection import missing_sqlite_file, open_database
    from chargeback_engine.costdb.queries import head_run

    if missing := missing_sqlite_file(url):
        raise InputError(f"{missing}: no cost database (nothing recorded yet); give --db URL or set CHARGEBACK_DB")
    engine = open_database(url)
    ledgers, journaled = [], {}
    chargeback: set[str] = set()
    buckets: set[str] = set()
    names: dict[str, str] = {}
    with engine.connect() as conn:
        for period in sorted(set(conn.execute(sa.select(t.runs.c.period)).scalars())):
            run_key = head_run(conn, period)
            buckets.update(
                conn.execute(sa.select(t.runs.c.unallocated_cost_center).where(t.runs.c.run_key == run_key)).scalars()
            )
            lines = (
                conn.execute(
                    sa.select(
                        t.ledger_lines.c.period,
                        t.ledger_lines.c.service_name,
                        t.ledger_lines.c.cost_center,
                        t.ledger_lines.c.from_cost_center,
                        t.ledger_lines.c.stage,
                        t.ledger_lines.c.category,
                        t.ledger_lines.c.amount,
                        t.ledger_lines.c.currency,
                    ).where(t.ledger_lines.c.run_key == run_key)
                )
                .mappings()
                .all()
            )
            adjustments = (
                conn.execute(
                    sa.select(
                        t.adjustments.c.period,
                        t.adjustments.c.service_name,
                        t.adjustments.c.cost_center,
                        t.adjustments.c.currency,
                        t.adjustments.c.amount,
                    ).where(t.adjustments.c.period == period)
                )
                .mappings()
                .all()
            )
            rows = [dict(r) for r in lines] + [
                {**dict(a), "from_cost_center": None, "stage": 0, "category": "adjustment"} for a in adjustments
            ]
            ledgers.append(
                pa.Table.from_pylist(
                    [{**r, "charge_period_start": None} for r in rows],
                    schema=pa.schema([LEDGER_SCHEMA.field(c) for c in LEDGER_COLUMNS]),
                )
            )
            names.update(
                conn.execute(
                    sa.select(t.run_cost_centers.c.cost_center, t.run_cost_centers.c.name).where(
                        t.run_cost_centers.c.run_key == run_key
                    )
                ).all()
            )
            chargeback.update(
                conn.execute(
                    sa.select(t.run_cost_centers.c.cost_center).where(
                        t.run_cost_centers.c.run_key == run_key, t.run_cost_centers.c.mode == "chargeback"
                    )
                ).scalars()
            )
            current = sa.select(t.journal_batches.c.batch_id).where(
                t.journal_batches.c.period == period,
                t.journal_batches.c.batch_id.not_in(sa.select(t.journal_batches.c.supersedes)),
            )
            posted = sa.select(t.journal_entries.c.invoice_id).where(
                t.journal_entries.c.batch_id.in_(current), t.journal_entries.c.reverses.is_(None)
            )
            subtotals = (
                conn.execute(sa.select(t.invoices.c.subtotal).where(t.invoices.c.invoice_id.in_(posted)))
                .scalars()
                .all()
            )
            if subtotals:
                journaled[period] = sum(subtotals, Decimal(0))
    engine.dispose()
    if not ledgers:
        raise InputError(f"{url or 'the cost database'}: no stored periods (no runs recorded)")
    return StoredPeriods(ledger_facts(ledgers, buckets), journaled, frozenset(chargeback), daily=False, names=names)


def read_metrics(path: str | Path) -> tuple[Metric, ...]:
    """Business metrics from CSV; a bad cell is reported with its file, row and column."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return tuple(_metrics(path, csv.DictReader(handle)))
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from exc


def _metrics(path: Path, reader: csv.DictReader[str]) -> Iterable[Metric]:
    missing = [c for c in METRIC_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}:1: column {missing[0]!r} is missing (need {','.join(METRIC_COLUMNS)})")
    for line, row in enumerate(reader, start=2):
        try:
            period = str(Period.parse(row["period"]))
        except PeriodError as exc:
            raise InputError(f"{path}:{line}: column 'period': {exc}") from exc
        try:
            value = Decimal(row["value"])
        except InvalidOperation:
            raise InputError(f"{path}:{line}: column 'value': {row['value']!r} is not a number") from None
        if not value.is_finite() or value < 0:
            raise InputError(f"{path}:{line}: column 'value': {row['value']!r} must be a finite number, at least 0")
        if not row["metric"]:
            raise InputError(f"{path}:{line}: column 'metric': empty")
        yield Metric(period, row["cost_center"] or None, row["metric"], value)


def read_budgets(path: str | Path) -> dict[tuple[str, str], Decimal]:
    """Budgets from CSV (``cost_center,period,amount``) as ``{(cost_center, period): amount}``."""
    path = Path(path)
    budgets: dict[tuple[str, str], Decimal] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("cost_center", "period", "amount") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}:1: column {missing[0]!r} is missing (need cost_center,period,amount)")
        for line, row in enumerate(reader, start=2):
            if not row["cost_center"]:
                raise InputError(f"{path}:{line}: column 'cost_center': empty")
            try:
                period = str(Period.parse(row["period"]))
            except PeriodError as exc:
                raise InputError(f"{path}:{line}: column 'period': {exc}") from exc
            try:
                amount = Decimal(row["amount"])
            except InvalidOperation:
                raise InputError(f"{path}:{line}: column 'amount': {row['amount']!r} is not a number") from None
            if not amount.is_finite() or amount < 0:
                raise InputError(
                    f"{path}:{line}: column 'amount': {row['amount']!r} must be a finite amount, at least 0"
                )
            if (row["cost_center"], period) in budgets:
                raise InputError(f"{path}:{line}: a second budget for {row['cost_center']} in {period}")
            budgets[(row["cost_center"], period)] = amount
    return budgets
