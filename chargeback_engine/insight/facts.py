"""Cost facts: the allocation ledger folded to one exact amount per day, cost center and service.

Every insight (reports, KPIs, budgets, anomalies, forecasts, the dashboard) reads these
facts, never the ledger, so a ledger of tens of millions of rows becomes a few thousand
Decimal values once, and each analysis is a pure function over them.

Each fact also says how the money reached its owner (:data:`COVERAGE`), derived from the
ledger's stage rows: money still held by an unallocated bucket is ``unallocated`` (the
policy's bucket, as the run recorded it, whatever put the money there: no rule matching, or
a rule's fallback), money
held by a shared pool that was not redistributed is ``pooled``, money that arrived through
a shared-cost stage is ``shared``, and everything else is ``direct``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.errors import InputError
from chargeback_engine.periods import Period

#: How money reached its final cost center; the four always add up to the period total.
COVERAGE = ("direct", "shared", "unallocated", "pooled")

ZERO = Decimal(0)


@dataclass(frozen=True, order=True)
class Fact:
    """Exact cost of one service for one cost center on one day, by how it was allocated."""

    period: str
    day: date
    cost_center: str
    service: str
    coverage: str
    amount: Decimal


@dataclass(frozen=True)
class Facts:
    """All facts of a set of stored periods, in one currency."""

    currency: str
    rows: tuple[Fact, ...]

    @property
    def periods(self) -> tuple[Period, ...]:
        return tuple(sorted({Period.parse(f.period) for f in self.rows}))

    @property
    def cost_centers(self) -> tuple[str, ...]:
        return tuple(sorted({f.cost_center for f in self.rows}))

    def in_period(self, period: Period) -> list[Fact]:
        key = str(period)
        return [f for f in self.rows if f.period == key]

    def total(self, period: Period, cost_center: str | None = None) -> Decimal:
        return sum(
            (f.amount for f in self.in_period(period) if cost_center is None or f.cost_center == cost_center),
            ZERO,
        )

    def by_cost_center(self, period: Period) -> dict[str, Decimal]:
        return _sum_by(self.in_period(period), lambda f: f.cost_center)

    def by_service(self, period: Period, cost_center: str | None = None) -> dict[str, Decimal]:
        rows = [f for f in self.in_period(period) if cost_center is None or f.cost_center == cost_center]
        return _sum_by(rows, lambda f: f.service)

    def by_coverage(self, period: Period) -> dict[str, Decimal]:
        totals = _sum_by(self.in_period(period), lambda f: f.coverage)
        return {name: totals.get(name, ZERO) for name in COVERAGE}

    def daily(self, key: str = "cost_center") -> dict[tuple[str, ...], dict[date, Decimal]]:
        """Daily totals per cost center (``key="cost_center"``) or per (cost center, service)."""
        series: dict[tuple[str, ...], dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
        for f in self.rows:
            group = (f.cost_center,) if key == "cost_center" else (f.cost_center, f.service)
            series[group][f.day] += f.amount
        return {k: dict(v) for k, v in sorted(series.items())}


def _sum_by(rows: Iterable[Fact], key: Callable[[Fact], str]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for f in rows:
        totals[key(f)] += f.amount
    return dict(sorted(totals.items()))


def ledger_facts(ledgers: Iterable[pa.Table], buckets: Iterable[str] = ()) -> Facts:
    """Fold ledgers (``LEDGER_SCHEMA``) into facts; all ledgers must share one currency.

    ``buckets`` are the policies' unallocated cost centers. A bucket that only a rule's
    fallback filled has no ``unallocated`` row, so without them it would count as a team."""
    buckets = frozenset(buckets)
    folded = [_fold(t, buckets) for t in ledgers if t.num_rows]
    currencies = sorted({c for _, cs in folded for c in cs})
    if len(currencies) > 1:
        raise InputError(f"stored periods mix currencies {', '.join(currencies)}; report one currency at a time")
    rows = tuple(sorted(f for facts, _ in folded for f in facts))
    return Facts(currencies[0] if currencies else "USD", rows)


def _fold(ledger: pa.Table, known_buckets: frozenset[str]) -> tuple[list[Fact], set[str]]:
    pools = set(pc.unique(ledger["from_cost_center"].drop_null()).to_pylist())
    unmatched = pc.filter(ledger["cost_center"], pc.equal(ledger["category"], "unallocated"))
    buckets = known_buckets | set(pc.unique(unmatched).to_pylist())
    days = pc.cast(ledger["charge_period_start"], pa.date32())
    table = pa.table(
        {
            "period": ledger["period"],
            "day": days,
            "cost_center": ledger["cost_center"],
            "service": pc.fill_null(ledger["service_name"], "(none)"),
            "shared": pc.greater(ledger["stage"], 0),
            "amount": ledger["amount"],
        }
    )
    keys = ["period", "day", "cost_center", "service", "shared"]
    grouped = table.group_by(keys, use_threads=False).aggregate([("amount", "sum")])
    facts = []
    for row in grouped.to_pylist():
        period = Period.parse(row["period"])
        day = row["day"]
        if day is None or not period.start <= day < period.end:
            day = period.start  # amortized and restated parts belong to their charged period
        if row["cost_center"] in buckets:
            coverage = "unallocated"
        elif row["cost_center"] in pools:
            coverage = "pooled"
        else:
            coverage = "shared" if row["shared"] else "direct"
        facts.append(Fact(row["period"], day, row["cost_center"], row["service"], coverage, row["amount_sum"]))
    return _merge(facts), set(pc.unique(ledger["currency"]).to_pylist())


def _merge(facts: Iterable[Fact]) -> list[Fact]:
    """Re-add facts whose day was moved, so each (period, day, cc, service, coverage) is one fact."""
    totals: dict[tuple[str, date, str, str, str], Decimal] = defaultdict(lambda: ZERO)
    for f in facts:
        totals[(f.period, f.day, f.cost_center, f.service, f.coverage)] += f.amount
    return [Fact(*key, amount) for key, amount in totals.items()]
