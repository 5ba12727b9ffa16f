"""FinOps KPIs for one period, each a pure function of facts and the business inputs it needs.

A KPI whose input is missing (no tag report, no budgets, no stored forecasts, no drivers,
no headcount, no journals) is ``None`` rather than a misleading zero. Tagging compliance
is not computed here: it is the headline of ``chargeback report tags``
(:func:`chargeback_engine.compliance.tag_report`), the figures finance's switch reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from chargeback_engine.compliance import TagReport
from chargeback_engine.insight.facts import ZERO, Facts
from chargeback_engine.insight.forecast import Forecast
from chargeback_engine.insight.reports import percent
from chargeback_engine.periods import Period

#: Metric name of the headcount series in the business metrics; every other name is a driver.
HEADCOUNT = "headcount"
UNIT = Decimal("0.0001")


@dataclass(frozen=True)
class Metric:
    """A business figure for a period, for one cost center or (``cost_center=None``) the company."""

    period: str
    cost_center: str | None
    name: str
    value: Decimal


@dataclass(frozen=True)
class TaggingCompliance:
    """The tag report's headline for the period's run: lines and gross spend carrying every required tag."""

    required: tuple[str, ...]
    lines: int
    compliant_lines: int
    by_count_pct: Decimal | None
    spend: Decimal
    compliant_spend: Decimal
    by_spend_pct: Decimal | None


@dataclass(frozen=True)
class Coverage:
    total: Decimal
    direct: Decimal
    shared: Decimal
    unallocated: Decimal
    pooled: Decimal
    direct_pct: Decimal | None
    shared_pct: Decimal | None
    unallocated_pct: Decimal | None


@dataclass(frozen=True)
class Variance:
    cost_center: str
    budget: Decimal
    actual: Decimal
    variance: Decimal  # actual - budget: positive is an overrun
    variance_pct: Decimal | None


@dataclass(frozen=True)
class ForecastAccuracy:
    cost_center: str
    forecast: Decimal
    actual: Decimal
    error_pct: Decimal | None  # absolute percent error


@dataclass(frozen=True)
class UnitCost:
    driver: str
    cost_center: str | None
    cost: Decimal
    quantity: Decimal
    unit_cost: Decimal | None


@dataclass(frozen=True)
class KPIs:
    period: str
    currency: str
    tagging: TaggingCompliance | None
    coverage: Coverage
    budget_variance: tuple[Variance, ...]
    total_budget_variance_pct: Decimal | None
    forecast_accuracy: tuple[ForecastAccuracy, ...]
    forecast_mape_pct: Decimal | None
    unit_costs: tuple[UnitCost, ...]
    cost_per_engineer: tuple[UnitCost, ...]
    gl_recharge_rate_pct: Decimal | None


def tagging_compliance(report: TagReport | None, currency: str) -> TaggingCompliance | None:
    """``report``'s compliance of all lines in ``currency``, exactly as ``report tags`` shows it."""
    if report is None:
        return None
    for row in report.total:
        if row.currency == currency:
            return TaggingCompliance(
                report.required,
                row.lines,
                row.compliant_lines,
                row.pct_lines,
                row.spend,
                row.compliant_spend,
                row.pct_spend,
            )
    return None


def coverage(facts: Facts, period: Period) -> Coverage:
    parts = facts.by_coverage(period)
    total = sum(parts.values(), ZERO)
    return Coverage(
        total,
        parts["direct"],
        parts["shared"],
        parts["unallocated"],
        parts["pooled"],
        percent(parts["direct"], total),
        percent(parts["shared"], total),
        percent(parts["unallocated"], total),
    )


def budget_variance(facts: Facts, period: Period, budgets: Mapping[str, Decimal]) -> tuple[Variance, ...]:
    actuals = facts.by_cost_center(period)
    return tuple(
        Variance(
            cc,
            budget,
            actuals.get(cc, ZERO),
            actuals.get(cc, ZERO) - budget,
            percent(actuals.get(cc, ZERO) - budget, budget),
        )
        for cc, budget in sorted(budgets.items())
    )


def forecast_accuracy(facts: Facts, period: Period, forecasts: Iterable[Forecast]) -> tuple[ForecastAccuracy, ...]:
    """Stored month-end forecasts of ``period`` against its actuals (the latest forecast per cost center)."""
    latest: dict[str, Forecast] = {}
    for f in sorted(forecasts, key=lambda f: f.as_of):
        if f.period == str(period):
            latest[f.cost_center] = f
    actuals = facts.by_cost_center(period)
    return tuple(
        ForecastAccuracy(
            cc, f.amount, actuals.get(cc, ZERO), percent(abs(f.amount - actuals.get(cc, ZERO)), actuals.get(cc, ZERO))
        )
        for cc, f in sorted(latest.items())
    )


def unit_costs(facts: Facts, period: Period, metrics: Iterable[Metric], *, headcount: bool) -> tuple[UnitCost, ...]:
    """Cost per unit of each driver (``headcount=False``) or per engineer (``headcount=True``)."""
    costs = facts.by_cost_center(period)
    total = sum(costs.values(), ZERO)
    units = []
    for m in sorted(metrics, key=lambda m: (m.name, m.cost_center or "")):
        if m.period != str(period) or (m.name == HEADCOUNT) != headcount:
            continue
        cost = total if m.cost_center is None else costs.get(m.cost_center, ZERO)
        unit = None if m.value == 0 else (cost / m.value).quantize(UNIT)
        units.append(UnitCost(m.name, m.cost_center, cost, m.value, unit))
    return tuple(units)


def kpis(
    facts: Facts,
    period: Period,
    *,
    tags: TagReport | None = None,
    budgets: Mapping[str, Decimal] | None = None,
    forecasts: Iterable[Forecast] = (),
    metrics: Iterable[Metric] = (),
    journaled: Decimal | None = None,
) -> KPIs:
    """Every KPI of one period; ``tags`` is the tag report of the period's run, ``journaled``
    the spend that reached the general ledger."""
    metrics = tuple(metrics)
    variances = budget_variance(facts, period, budgets or {})
    accuracy = forecast_accuracy(facts, period, forecasts)
    total_budget = sum((v.budget for v in variances), ZERO)
    total_variance = sum((v.variance for v in variances), ZERO)
    errors = [a.error_pct for a in accuracy if a.error_pct is not None]
    total = facts.total(period)
    return KPIs(
        period=str(period),
        currency=facts.currency,
        tagging=tagging_compliance(tags, facts.currency),
        coverage=coverage(facts, period),
        budget_variance=variances,
        total_budget_variance_pct=percent(total_variance, total_budget),
        forecast_accuracy=accuracy,
        forecast_mape_pct=(sum(errors, ZERO) / len(errors)).quantize(Decimal("0.1")) if errors else None,
        unit_costs=unit_costs(facts, period, metrics, headcount=False),
        cost_per_engineer=unit_costs(facts, period, metrics, headcount=True),
        gl_recharge_rate_pct=None if journaled is None else percent(journaled, total),
    )
