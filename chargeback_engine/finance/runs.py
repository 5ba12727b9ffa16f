"""Recording engine runs: idempotent by run key, restatements of closed periods as adjustments.

A run is keyed by its period, the versions of its sources and the policy version. Seeing
the same key again with the same content writes nothing; with different content it is a
hard error. A new key for an open period supersedes the period's previous run. A new key
for a closed period leaves that period untouched: the difference to the run it replaces
becomes adjustment lines in the next open period, each naming the period and run it corrects.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from chargeback_engine.canonical import canonical_json, content_id, sha256_text
from chargeback_engine.compliance import Compliance, by_cost_center
from chargeback_engine.costdb.connection import writing
from chargeback_engine.costdb.queries import head_run
from chargeback_engine.costdb.tables import (
    adjustments,
    decisions,
    exact,
    ledger_lines,
    period_closes,
    run_cost_centers,
    run_tag_compliance,
    runs,
)
from chargeback_engine.errors import InputError
from chargeback_engine.finance import audit
from chargeback_engine.finance.finance_errors import RunConflictError
from chargeback_engine.ledger import CATEGORIES
from chargeback_engine.logs import get_logger
from chargeback_engine.money import LEDGER_SCALE
from chargeback_engine.periods import Period
from chargeback_engine.policy.policy_model import CostCenter, Policy

log = get_logger(__name__)

#: Ledger columns the cost database keeps, in ``ledger_lines`` order.
LEDGER_COLUMNS = (
    "record_id",
    "source_id",
    "source_row",
    "period",
    "service_name",
    "cost_center",
    "from_cost_center",
    "stage",
    "category",
    "rule_id",
    "method",
    "decision_id",
    "amount",
    "currency",
)
_REQUIRED = {
    "record_id",
    "source_id",
    "source_row",
    "period",
    "cost_center",
    "stage",
    "category",
    "method",
    "decision_id",
    "amount",
    "currency",
}
_DECISION_COLUMNS = ("decision_id", "rule_id", "rule_location", "method", "shares", "reason")

#: Ledger amounts are aggregated by these before they reach statements and adjustments.
AggregateKey = tuple[str, str, str, str]  # cost_center, currency, service_name, category


@dataclass(frozen=True)
class RunInput:
    """One engine run for one period, as the cost database needs it."""

    period: Period
    ledger: pa.Table  # in chargeback_engine.ledger.LEDGER_SCHEMA (extra columns are ignored)
    cost_centers: Sequence[CostCenter]
    policy_version: str
    policy_hash: str
    source_versions: Mapping[str, str]
    unallocated: str = "UNALLOCATED"
    decisions: pa.Table | None = None  # in DECISION_RECORD_SCHEMA
    #: Each cost center's tag compliance, as ``chargeback report tags`` has it (none: the
    #: policy requires no tags, and ``mode: auto`` falls back to the tagged methods' share).
    tag_compliance: tuple[Compliance, ...] = ()

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        period: Period,
        ledger: pa.Table,
        source_versions: Mapping[str, str],
        decisions: pa.Table | None = None,
        out: Path | None = None,
    ) -> RunInput:
        """``out``, the run's output directory, gives the tag compliance when the policy requires tags."""
        return cls(
            period=period,
            ledger=ledger,
            cost_centers=policy.cost_centers,
            policy_version=policy.version,
            policy_hash=policy.content_hash,
            source_versions=dict(source_versions),
            unallocated=policy.unallocated,
            decisions=decisions,
            tag_compliance=() if out is None else by_cost_center(out, policy),
        )

    @classmethod
    def from_result(cls, result: Any) -> RunInput:
        """A run from :meth:`chargeback_engine.engine.runner.Engine.run`'s result.

        The ledger rows of the run's own period are recorded; amortization parts the engine
        schedules for later periods are those periods' business. Each input's version is the
        collector's source version, else its SHA-256.
        """
        versions = {info.source_id: info.version or info.sha256 for info in result.inputs}
        out = next((path.parent for path in result.outputs if path.name == "manifest.json"), None)
        return cls.from_policy(result.policy, result.period, result.allocations, versions, result.decisions, out)

    @property
    def run_key(self) -> str:
        return content_id(
            "run",
            {
                "period": str(self.period),
                "policy_version": self.policy_version,
                "source_versions": dict(self.source_versions),
            },
        )


@dataclass(frozen=True)
class IngestResult:
    run_key: str
    committed: bool  # False when the identical run was already recorded
    period: str
    restated: bool = False  # the period was closed: the change went to adjustments
    adjustment_period: str | None = None
    adjustments: int = 0
    totals: Mapping[str, Decimal] = field(default_factory=dict)


def _ledger_rows(run: RunInput) -> list[tuple[Any, ...]]:
    """Validate the ledger and return its rows; errors name the row and the column."""
    missing = sorted(_REQUIRED - set(run.ledger.column_names))
    if missing:
        raise InputError(f"ledger: column {missing[0]!r} is missing (required: {', '.join(sorted(_REQUIRED))})")
    columns = {
        name: (run.ledger[name].to_pylist() if name in run.ledger.column_names else [None] * run.ledger.num_rows)
        for name in LEDGER_COLUMNS
    }
    rows = list(zip(*(columns[name] for name in LEDGER_COLUMNS)))
    period = str(run.period)
    for i, row in enumerate(rows):
        values = dict(zip(LEDGER_COLUMNS, row))
        for name in _REQUIRED:
            if values[name] is None:
                raise InputError(f"ledger row {i}, column {name!r}: value is missing")
        if values["period"] != period:
            raise InputError(f"ledger row {i}, column 'period': {values['period']!r} is not the run's period {period}")
        if values["category"] not in CATEGORIES:
            raise InputError(
                f"ledger row {i}, column 'category': {values['category']!r} is not one of {', '.join(CATEGORIES)}"
            )
        if not isinstance(values["amount"], Decimal):
            raise InputError(
                f"ledger row {i}, column 'amount': must be decimal128(38,{LEDGER_SCALE}), "
                f"not {type(values['amount']).__name__}"
            )
    return rows


def _content_hash(run: RunInput, rows: list[tuple[Any, ...]]) -> str:
    body = canonical_json(
        {
            "policy_hash": run.policy_hash,
            "unallocated": run.unallocated,
            "cost_centers": sorted([cc.id, cc.name, cc.mode, cc.gl_account, cc.entity] for cc in run.cost_centers),
            "rows": [list(row) for row in rows],
            **({"tag_compliance": _compliance_rows(run)} if run.tag_compliance else {}),
        },
        "text",
    )
    return sha256_text(body)


def _compliance_rows(run: RunInput) -> list[dict[str, Any]]:
    return [
        {
            "cost_center": c.key,
            "currency": c.currency,
            "lines": c.lines,
            "compliant_lines": c.compliant_lines,
            "spend": c.spend,
            "compliant_spend": c.compliant_spend,
        }
        for c in run.tag_compliance
    ]


def closed_periods(connection: sa.Connection) -> set[str]:
    return set(connection.execute(sa.select(period_closes.c.period)).scalars())


def next_open_period(connection: sa.Connection, period: Period) -> Period:
    closed = closed_periods(connection)
    candidate = period.shift(1)
    while str(candidate) in closed:
        candidate = candidate.shift(1)
    return candidate


def aggregate_run(connection: sa.Connection, run_key: str) -> dict[AggregateKey, Decimal]:
    """Exact totals of a run's ledger by cost center, currency, service and category."""
    totals: dict[AggregateKey, Decimal] = defaultdict(Decimal)
    query = sa.select(
        ledger_lines.c.cost_center,
        ledger_lines.c.currency,
        ledger_lines.c.service_name,
        ledger_lines.c.category,
        ledger_lines.c.amount,
    ).where(ledger_lines.c.run_key == run_key)
    for cc, currency, service, category, amount in connection.execute(query):
        totals[(cc, currency, service or "", category)] += amount
    return dict(totals)


def _insert_run(
    connection: sa.Connection, run: RunInput, rows: list[tuple[Any, ...]], content: str, supersedes: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write the run and its lines; returns the ``runs`` and ``run_tag_compliance`` rows (its audit record covers them)."""
    key = run.run_key
    run_row = {
        "run_key": key,
        "period": str(run.period),
        "policy_version": run.policy_version,
        "policy_hash": run.policy_hash,
        "source_versions": canonical_json(dict(run.source_versions), "text"),
        "content_hash": content,
        "supersedes": supersedes,
        "unallocated_cost_center": run.unallocated,
        "line_count": len(rows),
    }
    connection.execute(runs.insert().values(run_row))
    known = {cc.id: cc for cc in run.cost_centers}
    present = sorted({row[LEDGER_COLUMNS.index("cost_center")] for row in rows} | set(known))
    connection.execute(
        run_cost_centers.insert(),
        [
            {
                "run_key": key,
                "cost_center": cc_id,
                "name": known[cc_id].name if cc_id in known else cc_id,
                "mode": known[cc_id].mode if cc_id in known else "showback",
                "gl_account": known[cc_id].gl_account if cc_id in known else None,
                "entity": known[cc_id].entity if cc_id in known else None,
            }
            for cc_id in present
        ],
    )
    compliance = [{"run_key": key, **row} for row in _compliance_rows(run)]
    if compliance:
        connection.execute(run_tag_compliance.insert(), compliance)
    if rows:
        connection.execute(
            ledger_lines.insert(),
            [{"run_key": key, "line_no": i, **dict(zip(LEDGER_COLUMNS, row))} for i, row in enumerate(rows)],
        )
    if run.decisions is not None and run.decisions.num_rows:
        table = run.decisions
        values = {name: table[name].to_pylist() for name in _DECISION_COLUMNS if name in table.column_names}
        seen: set[str | None] = set()
        batch = []
        for i in range(table.num_rows):
            decision = {name: values[name][i] if name in values else None for name in _DECISION_COLUMNS}
            if decision["decision_id"] in seen:
                continue
            seen.add(decision["decision_id"])
            decision["shares"] = decision["shares"] or "{}"
            decision["reason"] = decision["reason"] or ""
            batch.append({"run_key": key, **decision})
        connection.execute(decisions.insert(), batch)
    return run_row, compliance


def _restate(connection: sa.Connection, run: RunInput, previous: str) -> tuple[Period, list[dict[str, Any]]]:
    """Book the difference between the new run and the one it replaces into the next open period."""
    target = next_open_period(connection, run.period)
    before, after = aggregate_run(connection, previous), aggregate_run(connection, run.run_key)
    rows = []
    for key in sorted(set(before) | set(after)):
        delta = after.get(key, Decimal(0)) - before.get(key, Decimal(0))
        if delta == 0:
            continue
        cc, currency, service, category = key
        rows.append(
            {
                "adjustment_id": content_id("adj", [run.run_key, previous, *key]),
                "period": str(target),
                "corrects_period": str(run.period),
                "corrects_run": previous,
                "by_run": run.run_key,
                "cost_center": cc,
                "service_name": service,
                "category": category,
                "currency": currency,
                "amount": delta,
            }
        )
    if rows:
        connection.execute(adjustments.insert(), rows)
    return target, rows


def _totals(rows: list[tuple[Any, ...]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    amount, currency = LEDGER_COLUMNS.index("amount"), LEDGER_COLUMNS.index("currency")
    for row in rows:
        totals[row[currency]] += row[amount]
    return dict(sorted(totals.items()))


@exact
def ingest_run(engine: sa.Engine, run: RunInput) -> IngestResult:
    """Record one run; idempotent by run key, and atomic (all of it or nothing)."""
    rows = _ledger_rows(run)
    content = _content_hash(run, rows)
    key, period = run.run_key, str(run.period)
    with writing(engine) as connection:
        existing = connection.execute(sa.select(runs.c.content_hash).where(runs.c.run_key == key)).scalar()
        if existing == content:
            log.info("finance.run.unchanged", run_key=key, period=period)
            return IngestResult(run_key=key, committed=False, period=period, totals=_totals(rows))
        if existing is not None:
            raise RunConflictError(
                f"run {key} for {period} (policy {run.policy_version}, sources "
                f"{canonical_json(dict(run.source_versions), 'text')}) was already recorded with different content; "
                "a changed input needs a new source version"
            )
        previous = head_run(connection, period)
        run_row, compliance = _insert_run(connection, run, rows, content, previous or "")
        restated = previous is not None and period in closed_periods(connection)
        target, booked = _restate(connection, run, previous) if previous and restated else (None, [])
        count = len(booked)
        audit.append(
            connection,
            "run.recorded",
            key,
            {
                "period": period,
                "totals": _totals(rows),
                "restatement": {"adjustment_period": str(target), "adjustments": count} if restated else None,
            },
            rows={runs: [run_row], run_tag_compliance: compliance, adjustments: booked},
        )
    log.info("finance.run.recorded", run_key=key, period=period, lines=len(rows), restated=restated)
    return IngestResult(
        run_key=key,
        committed=True,
        period=period,
        restated=restated,
        adjustment_period=str(target) if target else None,
        adjustments=count,
        totals=_totals(rows),
    )


def _manifest_versions(manifest_path: Path) -> dict[str, str]:
    """Source versions from an engine run manifest: each input's SHA-256 is its version."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    inputs = manifest.get("inputs")
    if isinstance(inputs, Mapping):
        inputs = [
            {"path": path, **(value if isinstance(value, Mapping) else {"sha256": value})}
            for path, value in inputs.items()
        ]
    versions = {}
    for item in inputs or []:
        source = item.get("source_id") or item.get("path")
        version = item.get("version") or item.get("sha256")
        if source and version:
            versions[str(source)] = str(version)
    if not versions:
        raise InputError(f"{manifest_path}: no inputs with a path and sha256 to version the run by")
    return versions


def run_from_files(
    ledger_path: Path,
    policy_paths: Sequence[Path],
    period: Period,
    source_versions: Mapping[str, str] | None = None,
    manifest_path: Path | None = None,
    decisions_path: Path | None = None,
    registry: Any = None,
) -> RunInput:
    """A run from the engine's output files: the ledger Parquet, its policy and its source versions."""
    from chargeback_engine.policy.loader import load_policies

    versions = dict(source_versions or {})
    if not versions and manifest_path is not None:
        versions = _manifest_versions(manifest_path)
    if not versions:
        raise InputError("a run needs source versions: pass --source-version ID=VERSION or --manifest")
    policy = load_policies(policy_paths, registry).for_period(period)
    ledger = pq.read_table(ledger_path)
    ledger = ledger.filter(pc.equal(ledger["period"], str(period)))  # later amortization parts are not this run's
    decided = pq.read_table(decisions_path) if decisions_path else None
    return RunInput.from_policy(policy, period, ledger, versions, decided, ledger_path.parent)
