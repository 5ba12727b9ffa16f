"""The team report and the executive summary: pure functions over cost facts and budgets.

Amounts stay exact Decimals (the ledger's scale) until a renderer formats them; percents
are quantised to one decimal and are ``None`` when the base is zero, never a division error.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from chargeback_engine.insight.facts import ZERO, Facts
from chargeback_engine.periods import Period

TREND_MONTHS = 6
TOP = 5
PERCENT = Decimal("0.1")


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percent of ``whole``, to one decimal; ``None`` when ``whole`` is zero."""
    if whole == 0:
        return None
    return (part * 100 / whole).quantize(PERCENT, rounding=ROUND_HALF_EVEN)


def change_percent(current: Decimal, previous: Decimal) -> Decimal | None:
    return percent(current - previous, abs(previous))


@dataclass(frozen=True)
class Line:
    """A named amount in the current period, with the previous period's and the change."""

    name: str
    current: Decimal
    previous: Decimal
    change_pct: Decimal | None

    @classmethod
    def of(cls, name: str, current: Decimal, previous: Decimal) -> Line:
        return cls(name, current, previous, change_percent(current, previous))

    @property
    def change(self) -> Decimal:
        return self.current - self.previous


@dataclass(frozen=True)
class TrendPoint:
    period: str
    amount: Decimal


@dataclass(frozen=True)
class BudgetUse:
    budget: Decimal
    actual: Decimal
    utilisation_pct: Decimal | None
    forecast: Decimal | None = None
    forecast_utilisation_pct: Decimal | None = None


@dataclass(frozen=True)
class TeamReport:
    cost_center: str
    period: str
    currency: str
    total: Line
    direct: Decimal
    shared: Decimal
    top_services: tuple[Line, ...]
    budget: BudgetUse | None
    trend: tuple[TrendPoint, ...]


@dataclass(frozen=True)
class ExecutiveSummary:
    period: str
    currency: str
    total: Line
    by_team: tuple[Line, ...]
    top_by_cost: tuple[Line, ...]
    top_by_growth: tuple[Line, ...]
    unallocated: Decimal
    unallocated_pct: Decimal | None


def trend(
    facts: Facts, period: Period, cost_center: str | None = None, months: int = TREND_MONTHS
) -> tuple[TrendPoint, ...]:
    """Totals of the ``months`` stored periods up to ``period`` (missing periods are zero)."""
    first = period.shift(1 - months)
    stored = [p for p in facts.periods if first <= p <= period]
    start = stored[0] if stored else period
    span = (period.year - start.year) * 12 + period.month - start.month + 1
    return tuple(TrendPoint(str(p), facts.total(p, cost_center)) for p in (start.shift(i) for i in range(span)))


def budget_use(budget: Decimal | None, actual: Decimal, forecast: Decimal | None = None) -> BudgetUse | None:
    if budget is None:
        return None
    return BudgetUse(
        budget,
        actual,
        percent(actual, budget),
        forecast,
        None if forecast is None else percent(forecast, budget),
    )


def team_report(
    facts: Facts,
    cost_center: str,
    period: Period,
    *,
    budget: Decimal | None = None,
    forecast: Decimal | None = None,
) -> TeamReport:
    """One team's period against the previous one, its top services, budget and trend."""
    previous = period.shift(-1)
    now = facts.by_service(period, cost_center)
    before = facts.by_service(previous, cost_center)
    services = sorted(now, key=lambda s: (-now[s], s))[:TOP]
    rows = [f for f in facts.in_period(period) if f.cost_center == cost_center]
    current_total = sum(now.values(), ZERO)
    return TeamReport(
        cost_center=cost_center,
        period=str(period),
        currency=facts.currency,
        total=Line.of(cost_center, current_total, sum(before.values(), ZERO)),
        direct=sum((f.amount for f in rows if f.coverage == "direct"), ZERO),
        shared=sum((f.amount for f in rows if f.coverage == "shared"), ZERO),
        top_services=tuple(Line.of(s, now[s], before.get(s, ZERO)) for s in services),
        budget=budget_use(budget, current_total, forecast),
        trend=trend(facts, period, cost_center),
    )


def executive_summary(facts: Facts, period: Period) -> ExecutiveSummary:
    """The whole bill: total, every team, the biggest and the fastest-growing, what nobody owns."""
    now = facts.by_cost_center(period)
    before = facts.by_cost_center(period.shift(-1))
    coverage = facts.by_coverage(period)
    buckets = _unowned(facts, period) | _unowned(facts, period.shift(-1))
    teams = [
        Line.of(cc, now.get(cc, ZERO), before.get(cc, ZERO))
        for cc in sorted(set(now) | set(before))
        if cc not in buckets
    ]
    total = Line.of("total", sum(now.values(), ZERO), sum(before.values(), ZERO))
    return ExecutiveSummary(
        period=str(period),
        currency=facts.currency,
        total=total,
        by_team=tuple(teams),
        top_by_cost=tuple(sorted(teams, key=lambda t: (-t.current, t.name))[:TOP]),
        top_by_growth=tuple(sorted((t for t in teams if t.change > 0), key=lambda t: (-t.change, t.name))[:TOP]),
        unallocated=coverage["unallocated"],
        unallocated_pct=percent(coverage["unallocated"], total.current),
    )


def _unowned(facts: Facts, period: Period) -> set[str]:
    """Cost centers that hold unallocated or pooled money in ``period``: buckets and pools, not teams."""
    return {f.cost_center for f in facts.in_period(period) if f.coverage in ("unallocated", "pooled")}
