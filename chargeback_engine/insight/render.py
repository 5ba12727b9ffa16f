"""Render insight results as JSON, CSV, Markdown (for chat) and aligned text (for a terminal).

JSON keeps every amount exact, as a string. The table formats show money at the
currency's minor unit. Each report becomes a list of titled tables first, so the three
table formats can never disagree about what a report contains.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from chargeback_engine.csvwriter import csv_text
from chargeback_engine.insight.alerts import Alert
from chargeback_engine.insight.anomalies import Anomaly
from chargeback_engine.insight.forecast import Forecast
from chargeback_engine.insight.kpis import KPIs
from chargeback_engine.insight.reports import ExecutiveSummary, Line, TeamReport
from chargeback_engine.money import minor_units, quantum

FORMATS = ("text", "json", "csv", "markdown")


def jsonable(value: Any) -> Any:
    """Plain JSON data: Decimals and dates as strings, dataclasses and tuples unpacked."""
    if hasattr(value, "as_dict"):
        return jsonable(value.as_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (Decimal, date)):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    return value


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def render(result: Any, fmt: str, currency: str = "USD") -> str:
    if fmt == "json":
        return json.dumps(jsonable(result), indent=2, sort_keys=True) + "\n"
    tables = to_tables(result, currency)
    if fmt == "csv":
        return _csv(tables)
    if fmt == "markdown":
        return "\n".join(_markdown(t) for t in tables)
    return "\n".join(_text(t) for t in tables)


def to_tables(result: Any, currency: str = "USD") -> list[Table]:
    money = _money_formatter(currency)
    if isinstance(result, TeamReport):
        return _team_tables(result, money)
    if isinstance(result, ExecutiveSummary):
        return _executive_tables(result, money)
    if isinstance(result, KPIs):
        return _kpi_tables(result, money)
    if isinstance(result, list) and all(isinstance(r, Anomaly) for r in result):
        return [Table("Anomalies", ("day", "cost_center", "service", "actual", "expected", "impact", "impact_pct", "score"),
                      tuple((a.day.isoformat(), a.cost_center, a.service, money(a.actual), money(a.expected), money(a.impact),
                             _pct(a.impact_pct), f"{a.score:.1f}") for a in result))]
    if isinstance(result, list) and all(isinstance(r, Forecast) for r in result):
        return [Table("Forecasts", ("cost_center", "period", "as_of", "actual_to_date", "forecast", "lower", "upper", "level"),
                      tuple((f.cost_center, f.period, f.as_of.isoformat(), money(f.actual_to_date), money(f.amount),
                             money(f.lower), money(f.upper), f"{f.level}%") for f in result))]
    if isinstance(result, list) and all(isinstance(r, Alert) for r in result):
        return [Table("Alerts", ("alert_id", "kind", "period", "cost_center", "message"),
                      tuple((a.alert_id, a.kind, a.period, a.cost_center, a.message) for a in result))]
    raise TypeError(f"cannot render {type(result).__name__} as a table")


def _money_formatter(currency: str):  # type: ignore[no-untyped-def]
    unit = quantum(minor_units(currency))
    return lambda amount: "" if amount is None else f"{amount.quantize(unit):,}"


def _pct(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value}%"


def _lines(title: str, lines: Sequence[Line], money) -> Table:  # type: ignore[no-untyped-def]
    return Table(title, ("name", "current", "previous", "change_pct"),
                 tuple((l.name, money(l.current), money(l.previous), _pct(l.change_pct)) for l in lines))


def _team_tables(r: TeamReport, money) -> list[Table]:  # type: ignore[no-untyped-def]
    summary = [("period", r.period), ("total", money(r.total.current)), ("previous", money(r.total.previous)),
               ("change", _pct(r.total.change_pct)), ("direct", money(r.direct)), ("shared", money(r.shared))]
    if r.budget is not None:
        summary += [("budget", money(r.budget.budget)), ("budget used", _pct(r.budget.utilisation_pct))]
        if r.budget.forecast is not None:
            summary += [("forecast month end", money(r.budget.forecast)), ("forecast budget use", _pct(r.budget.forecast_utilisation_pct))]
    return [
        Table(f"Team report {r.cost_center} {r.period} ({r.currency})", ("item", "value"), tuple(summary)),
        _lines("Top services", r.top_services, money),
        Table("Six-month trend", ("period", "amount"), tuple((t.period, money(t.amount)) for t in r.trend)),
    ]


def _executive_tables(r: ExecutiveSummary, money) -> list[Table]:  # type: ignore[no-untyped-def]
    summary = (("period", r.period), ("total", money(r.total.current)), ("previous", money(r.total.previous)),
               ("change", _pct(r.total.change_pct)), ("unallocated", money(r.unallocated)), ("unallocated share", _pct(r.unallocated_pct)))
    return [
        Table(f"Executive summary {r.period} ({r.currency})", ("item", "value"), summary),
        _lines("Cost by team", r.by_team, money),
        _lines("Top teams by cost", r.top_by_cost, money),
        _lines("Top teams by growth", r.top_by_growth, money),
    ]


def _kpi_tables(k: KPIs, money) -> list[Table]:  # type: ignore[no-untyped-def]
    c = k.coverage
    rows = [
        ("tagging compliance (resources)", "n/a" if k.tagging is None else f"{_pct(k.tagging.by_count_pct)} of {k.tagging.resources}"),
        ("tagging compliance (spend)", "n/a" if k.tagging is None else _pct(k.tagging.by_spend_pct)),
        ("allocated directly", f"{money(c.direct)} ({_pct(c.direct_pct)})"),
        ("allocated through shared stages", f"{money(c.shared)} ({_pct(c.shared_pct)})"),
        ("unallocated", f"{money(c.unallocated)} ({_pct(c.unallocated_pct)})"),
        ("budget variance (all budgets)", _pct(k.total_budget_variance_pct)),
        ("forecast accuracy (MAPE)", _pct(k.forecast_mape_pct)),
        ("GL recharge rate", _pct(k.gl_recharge_rate_pct)),
    ]
    return [
        Table(f"KPIs {k.period} ({k.currency})", ("kpi", "value"), tuple(rows)),
        Table("Budget variance", ("cost_center", "budget", "actual", "variance", "variance_pct"),
              tuple((v.cost_center, money(v.budget), money(v.actual), money(v.variance), _pct(v.variance_pct)) for v in k.budget_variance)),
        Table("Forecast accuracy", ("cost_center", "forecast", "actual", "error_pct"),
              tuple((a.cost_center, money(a.forecast), money(a.actual), _pct(a.error_pct)) for a in k.forecast_accuracy)),
        Table("Unit cost", ("driver", "cost_center", "cost", "quantity", "unit_cost"),
              tuple((u.driver, u.cost_center or "(all)", money(u.cost), str(u.quantity), str(u.unit_cost)) for u in k.unit_costs)),
        Table("Cost per engineer", ("cost_center", "cost", "headcount", "cost_per_engineer"),
              tuple((u.cost_center or "(all)", money(u.cost), str(u.quantity), money(u.unit_cost)) for u in k.cost_per_engineer)),
    ]


def _csv(tables: Sequence[Table]) -> str:
    """One rectangular CSV per report: a ``section`` column names the table each row belongs to."""
    width = max(len(t.header) for t in tables)
    rows = [(t.title, *row, *[""] * (width - len(row))) for t in tables for row in (t.header, *t.rows)]
    return csv_text(("section", *[f"c{i + 1}" for i in range(width)]), rows)


def _markdown(t: Table) -> str:
    escape = lambda c: c.replace("|", "\\|")
    lines = [f"**{t.title}**", "", "| " + " | ".join(t.header) + " |", "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


def _text(t: Table) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in t.rows]) for i, h in enumerate(t.header)]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
    return "\n".join([t.title, fmt(t.header), *(fmt(r) for r in t.rows)]) + "\n"
