"""Seeded synthetic cost series with known anomalies, for evaluation and the demo sample.

Everything here is driven by ``random.Random(seed)``, so the same seed always gives the
same series, the same injected anomalies and therefore the same evaluation figures.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_engine.canonical import sha256_hex
from chargeback_engine.csvwriter import csv_bytes
from chargeback_engine.enrich.apply import ENRICHMENT_SCHEMA
from chargeback_engine.focus import COST_TABLE_SCHEMA
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.money import split
from chargeback_engine.periods import Period

#: Relative weekday profile (Monday first): business workloads dip at weekends.
WEEKLY_PROFILE = (1.06, 1.08, 1.08, 1.07, 1.03, 0.84, 0.84)


@dataclass(frozen=True)
class SyntheticSeries:
    """A daily series plus the indexes where anomalies were injected."""

    values: tuple[float, ...]
    spikes: frozenset[int]
    shifts: frozenset[int]  # first day of each level shift


def daily_series(
    rng: random.Random,
    days: int,
    *,
    level: float | None = None,
    noise: float = 0.04,
    start_weekday: int = 0,
) -> list[float]:
    """A clean daily cost series: level, gentle trend, weekly seasonality, multiplicative noise."""
    base = level if level is not None else rng.uniform(50.0, 5000.0)
    growth = rng.uniform(-0.001, 0.003)  # per day: -3% to +9% a month
    return [
        base * math.exp(growth * t) * WEEKLY_PROFILE[(start_weekday + t) % 7] * max(0.5, 1.0 + rng.gauss(0.0, noise))
        for t in range(days)
    ]


def series_with_anomalies(
    rng: random.Random,
    days: int,
    *,
    evaluate_from: int,
    spikes: int = 2,
    shifts: int = 1,
) -> SyntheticSeries:
    """A clean series with spikes (one day, +40% to +200%) and level shifts (+30% to +80%).

    Anomalies are injected only after ``evaluate_from``, so the detector always has a clean
    history to learn from, and at least ten days apart so that each one is a separate event.
    """
    values = daily_series(rng, days)
    candidates = list(range(evaluate_from, days - 1))
    chosen: list[int] = []
    while len(chosen) < spikes + shifts:
        day = rng.choice(candidates)
        if all(abs(day - other) >= 10 for other in chosen):
            chosen.append(day)
    shift_days = sorted(chosen[:shifts])
    spike_days = sorted(chosen[shifts:])
    for day in shift_days:
        factor = 1.0 + rng.uniform(0.3, 0.8)
        for t in range(day, days):
            values[t] *= factor
    for day in spike_days:
        values[day] *= 1.0 + rng.uniform(0.4, 2.0)
    return SyntheticSeries(tuple(values), frozenset(spike_days), frozenset(shift_days))


#: The sample's teams, shared pool and unallocated bucket.
SAMPLE_TEAMS = ("CC-1001", "CC-1002", "CC-1003", "CC-1004")
SAMPLE_POOL = "CC-9000"
SAMPLE_BUCKET = "UNALLOCATED"
SAMPLE_SERVICES = ("Amazon EC2", "Amazon S3", "Amazon RDS", "AWS Lambda")
SAMPLE_FIRST = Period(2026, 5)
SAMPLE_MONTHS = 6
#: The lines whose cost-center tag a CMDB filled (the bill lacked it), for the tag-compliance section.
SAMPLE_ENRICHED = ("CC-1004", "AWS Lambda")
#: The FOCUS lines as ``focus_allocated.parquet`` holds them: the line, then its direct allocation.
SAMPLE_FOCUS_SCHEMA = pa.schema(
    [
        *COST_TABLE_SCHEMA,
        pa.field("AllocatedMethodId", pa.string()),
        pa.field("AllocatedMethodDetails", pa.string()),
        pa.field("x_CostCenterId", pa.string()),
    ]
)


def write_sample(root: str | Path, *, seed: int = 6) -> Path:
    """Write six seeded months of run outputs (ledger, FOCUS lines, what a CMDB filled and
    the manifest) plus metrics and budgets.

    The months are 2026-05 to 2026-10. Teams own direct cost per service; a platform pool
    (``CC-9000``) is redistributed to the teams by direct cost in stage 1; untagged spend
    stays unallocated and shrinks as tagging improves. ``CC-1002`` / ``Amazon EC2`` has a
    one-day spike on 2026-10-08 and ``CC-1003`` / ``Amazon RDS`` a level shift from
    2026-10-20, so anomalies and budget alerts have something to find.
    """
    root = Path(root)
    rng = random.Random(seed)
    first = SAMPLE_FIRST.start
    days = (SAMPLE_FIRST.shift(SAMPLE_MONTHS).start - first).days
    series: dict[tuple[str, str], list[float]] = {}
    for team in SAMPLE_TEAMS:
        for service in SAMPLE_SERVICES:
            series[(team, service)] = daily_series(rng, days, level=rng.uniform(40, 900), start_weekday=first.weekday())
    series[(SAMPLE_POOL, "Amazon EKS")] = daily_series(rng, days, level=600, start_weekday=first.weekday())
    series[(SAMPLE_BUCKET, "Amazon EC2")] = daily_series(rng, days, level=260, start_weekday=first.weekday())
    spike, shift = date(2026, 10, 8), date(2026, 10, 20)
    series[("CC-1002", "Amazon EC2")][(spike - first).days] *= 3.0
    for t in range((shift - first).days, days):
        series[("CC-1003", "Amazon RDS")][t] *= 1.6
    for t in range(days):
        series[(SAMPLE_BUCKET, "Amazon EC2")][t] *= 1.0 - 0.6 * t / days  # tagging improves
    for month in range(SAMPLE_MONTHS):
        period = SAMPLE_FIRST.shift(month)
        out = root / str(period)
        out.mkdir(parents=True, exist_ok=True)
        ledger, focus = _sample_period(period, first, series)
        pq.write_table(pa.Table.from_pylist(ledger, schema=LEDGER_SCHEMA), out / "allocations.parquet")
        pq.write_table(pa.Table.from_pylist(focus, schema=SAMPLE_FOCUS_SCHEMA), out / "focus_allocated.parquet")
        pq.write_table(_sample_enrichment(focus, period), out / "enrichment.parquet")
        manifest = {"run_id": ledger[0]["run_id"], "period": str(period), "policy": {"unallocated": SAMPLE_BUCKET}}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _write_csv(root / "metrics.csv", ("period", "cost_center", "metric", "value"), _sample_metrics(rng))
    _write_csv(root / "budgets.csv", ("cost_center", "period", "amount"), _sample_budgets(series, first))
    return root


def _sample_period(
    period: Period, first: date, series: Mapping[tuple[str, str], list[float]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    run_id = sha256_hex(f"sample:{period}")[:16]
    base = {
        "run_id": run_id,
        "source_id": "sample",
        "period": str(period),
        "currency": "USD",
        "billing_account_id": "111111111111",
        "policy_version": "sample",
        "policy_hash": "sample",
    }
    ledger: list[dict[str, Any]] = []
    focus: list[dict[str, Any]] = []
    day = period.start
    while day < period.end:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        direct: dict[str, Decimal] = {}
        for (cc, service), values in series.items():
            amount = Decimal(repr(values[(day - first).days])).quantize(Decimal("0.0001"))
            row = len(focus)
            record = sha256_hex(f"{period}:{row}")[:24]
            tagged = cc != SAMPLE_BUCKET
            tags = {"cost-center": cc, "env": "prod"} if tagged else {"env": "prod"}
            resource = f"{service.split()[-1].lower()}-{cc.lower()}-{(row if tagged else day.day) % 3}"
            if not tagged and day.day % 3 == 0:
                tags["owner"] = "ana@example.com"  # the inventory knows whom to ask about this untagged one
            method, category = ("tag", "direct") if tagged else ("unallocated", "unallocated")
            focus.append(
                {
                    "EffectiveCost": amount,
                    "BilledCost": amount,
                    "BillingCurrency": "USD",
                    "ChargePeriodStart": start,
                    "ChargePeriodEnd": start + timedelta(days=1),
                    "ServiceName": service,
                    "ResourceId": resource,
                    "SubAccountId": "111111111111" if cc in ("CC-1001", "CC-1002") else "222222222222",
                    "Tags": json.dumps(tags),
                    "x_SourceId": "sample",
                    "x_SourceRow": row,
                    "AllocatedMethodId": method,
                    "AllocatedMethodDetails": json.dumps({"stage": 0, "category": category}),
                    "x_CostCenterId": cc,
                }
            )
            ledger.append(
                {
                    **base,
                    "record_id": record,
                    "source_row": row,
                    "charge_period_start": start,
                    "service_name": service,
                    "cost_center": cc,
                    "amount": amount,
                    "stage": 0,
                    "category": category,
                    "rule_id": "by-tag" if tagged else None,
                    "method": method,
                    "decision_id": sha256_hex(f"{cc}:{tagged}")[:16],
                }
            )
            if cc in SAMPLE_TEAMS:
                direct[cc] = direct.get(cc, Decimal(0)) + amount
            if cc == SAMPLE_POOL:
                pool_row = ledger[-1]
        teams = sorted(direct)
        shares = split(pool_row["amount"], [direct[t] for t in teams])
        stage = {
            **pool_row,
            "stage": 1,
            "from_cost_center": SAMPLE_POOL,
            "category": "shared",
            "rule_id": "platform-by-direct-cost",
            "method": "proportional",
        }
        ledger.append({**stage, "amount": -pool_row["amount"]})
        ledger.extend({**stage, "cost_center": t, "amount": share} for t, share in zip(teams, shares))
        day += timedelta(days=1)
    return ledger, focus


def _sample_enrichment(focus: list[dict[str, Any]], period: Period) -> pa.Table:
    """The cost-center tags a CMDB file filled on the :data:`SAMPLE_ENRICHED` lines."""
    cc, service = SAMPLE_ENRICHED
    filled = [line for line in focus if line["x_CostCenterId"] == cc and line["ServiceName"] == service]
    rows = [
        {
            "x_SourceId": line["x_SourceId"],
            "x_SourceRow": line["x_SourceRow"],
            "tag": "cost-center",
            "value": cc,
            "source": "cmdb",
            "enricher": "files",
            "snapshot": f"{period.end.isoformat()}T00:00Z",
            "scope": "resource",
            "key": line["ResourceId"],
            "replaced": None,
        }
        for line in filled
    ]
    return pa.Table.from_pylist(rows, schema=ENRICHMENT_SCHEMA)


def _sample_metrics(rng: random.Random) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for month in range(SAMPLE_MONTHS):
        period = str(SAMPLE_FIRST.shift(month))
        rows.append((period, "", "transactions", str(int(4_000_000 * (1 + 0.05 * month) * rng.uniform(0.95, 1.05)))))
        for team in SAMPLE_TEAMS:
            rows.append((period, team, "headcount", str(rng.randint(6, 14))))
    return rows


def _sample_budgets(series: Mapping[tuple[str, str], list[float]], first: date) -> list[tuple[str, ...]]:
    """Budgets at the team's average month of the first three months plus 5%: some teams will overrun."""
    rows: list[tuple[str, ...]] = []
    for team in SAMPLE_TEAMS:
        daily = [sum(values[t] for (cc, _), values in series.items() if cc == team) for t in range(91)]
        monthly = Decimal(repr(sum(daily) / 3 * 1.05)).quantize(Decimal(1))
        rows.extend((team, str(SAMPLE_FIRST.shift(m)), str(monthly)) for m in range(SAMPLE_MONTHS))
    return rows


def _write_csv(path: Path, header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    path.write_bytes(csv_bytes(header, rows))
