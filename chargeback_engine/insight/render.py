"""Render insight results as JSON, CSV, Markdown (for chat) and aligned text (for a terminal).

JSON keeps every amount exact, as a string. Text and Markdown are for people: money and
percents through :mod:`chargeback_engine.display` (minor unit, grouped, with the currency
code), cost-center names beside ids. CSV is for spreadsheets: amounts at the minor unit,
ungrouped, no code. Each report becomes a list of titled tables first, so the table
formats can never disagree about what a report contains.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from babel import Locale

from chargeback_engine import display
from chargeback_engine.components import Alert
from chargeback_engine.csvwriter import csv_text
from chargeback_engine.insight.anomalies import Anomaly
from chargeback_engine.insight.forecast import Forecast
from chargeback_engine.insight.kpis import KPIs
from chargeback_engine.insight.reports import ExecutiveSummary, Line, TeamReport
from chargeback_engine.money import minor_units

FORMATS = ("text", "table", "json", "csv", "markdown")  # table: text, the name every other command uses


def jsonable(value: Any) -> Any:
    """Plain JSON data: Decimals in positional notation (never ``0E-18``) and dates as strings, tuples unpacked."""
    if hasattr(value, "as_dict"):
        return jsonable(value.as_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (Decimal, date)):
        return format(value, "f") if isinstance(value, Decimal) else value.isoformat()
    return value


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def render(result: Any, fmt: str, currency: str = "USD", names: Mapping[str, str] | None = None) -> str:
    """``result`` as ``fmt``; ``names`` (cost-center id to name) label the table formats except CSV."""
    if fmt == "json":
        return json.dumps(jsonable(result), indent=2, sort_keys=True) + "\n"
    tables = to_tables(result, currency, names, for_people=fmt != "csv")
    if fmt == "csv":
        return _csv(tables)
    if fmt == "markdown":
        return "\n".join(_markdown(t) for t in tables)
    return "\n".join(_text(t) for t in tables)


@dataclass(frozen=True)
class _Cells:
    """How one rendering writes its cells: for people (display) or for spreadsheets (CSV)."""

    currency: str
    names: Mapping[str, str]
    for_people: bool

    def money(self, amount: Decimal | None) -> str:
        if amount is None:
            return ""
        if self.for_people:
            return display.money(amount, self.currency)
        return display.number(amount, minor_units(self.currency), locale=_SPREADSHEET).replace(",", "")

    def pct(self, value: Decimal | None) -> str:
        return display.percent(value, locale=None if self.for_people else _SPREADSHEET)

    def cc(self, cost_center: str) -> str:
        return display.cost_center(cost_center, self.names) if self.for_people else cost_center


#: CSV cells are read by spreadsheets, whatever the reader's locale: a point, no grouping.
_SPREADSHEET = Locale.parse("en_US")


def to_tables(
    result: Any, currency: str = "USD", names: Mapping[str, str] | None = None, *, for_people: bool = True
) -> list[Table]:
    f = _Cells(currency, names or {}, for_people)
    if isinstance(result, TeamReport):
        return _team_tables(result, f)
    if isinstance(result, ExecutiveSummary):
        return _executive_tables(result, f)
    if isinstance(result, KPIs):
        return _kpi_tables(result, f)
    if isinstance(result, list) and all(isinstance(r, Anomaly) for r in result):
        return [
            Table(
                "Anomalies",
                ("day", "cost_center", "service", "actual", "expected", "impact", "impact_pct", "score"),
                tuple(
                    (
                        a.day.isoformat(),
                        f.cc(a.cost_center),
                        a.service,
                        f.money(a.actual),
                        f.money(a.expected),
                        f.money(a.impact),
                        f.pct(a.impact_pct),
                        f"{a.score:.1f}",
                    )
                    for a in result
                ),
            )
        ]
    if isinstance(result, list) and all(isinstance(r, Forecast) for r in result):
        return [
            Table(
                "Forecasts",
                ("cost_center", "period", "as_of", "actual_to_date", "forecast", "lower", "upper", "level"),
                tuple(
                    (
                        f.cc(fc.cost_center),
                        fc.period,
                        fc.as_of.isoformat(),
                        f.money(fc.actual_to_date),
                        f.money(fc.amount),
                        f.money(fc.lower),
                        f.money(fc.upper),
                        f"{fc.level}%",
                    )
                    for fc in result
                ),
            )
        ]
    if isinstance(result, list) and all(isinstance(r, Alert) for r in result):
        return [
            Table(
                "Alerts",
                ("alert_id", "kind", "period", "cost_center", "message"),
                tuple((a.alert_id, a.kind, a.period, f.cc(a.cost_center), a.message) for a in result),
            )
        ]
    raise TypeError(f"cannot render {type(result).__name__} as a table")


def _lines(title: str, lines: Sequence[Line], f: _Cells, label: Callable[[str], str] = str) -> Table:
    return Table(
        title,
        ("name", "current", "previous", "change_pct"),
        tuple((label(l.name), f.money(l.current), f.money(l.previous), f.pct(l.change_pct)) for l in lines),
    )


def _team_tables(r: TeamReport, f: _Cells) -> list[Table]:
    summary = [
        ("period", r.period),
        ("total", f.money(r.total.current)),
        ("previous", f.money(r.total.previous)),
        ("change", f.pct(r.total.change_pct)),
        ("direct", f.money(r.direct)),
        ("shared", f.money(r.shared)),
    ]
    if r.budget is not None:
        summary += [("budget", f.money(r.budget.budget)), ("budget used", f.pct(r.budget.utilisation_pct))]
        if r.budget.forecast is not None:
            summary += [
                ("forecast month end", f.money(r.budget.forecast)),
                ("forecast budget use", f.pct(r.budget.forecast_utilisation_pct)),
            ]
    return [
        Table(f"Team report {f.cc(r.cost_center)} {r.period} ({r.currency})", ("item", "value"), tuple(summary)),
        _lines("Top services", r.top_services, f),
        Table("Six-month trend", ("period", "amount"), tuple((t.period, f.money(t.amount)) for t in r.trend)),
    ]


def _executive_tables(r: ExecutiveSummary, f: _Cells) -> list[Table]:
    summary = (
        ("period", r.period),
        ("total", f.money(r.total.current)),
        ("previous", f.money(r.total.previous)),
        ("change", f.pct(r.total.change_pct)),
        ("unallocated", f.money(r.unallocated)),
        ("unallocated share", f.pct(r.unallocated_pct)),
    )
    return [
        Table(f"Executive summary {r.period} ({r.currency})", ("item", "value"), summary),
        _lines("Cost by team", r.by_team, f, f.cc),
        _lines("Top teams by cost", r.top_by_cost, f, f.cc),
        _lines("Top teams by growth", r.top_by_growth, f, f.cc),
    ]


def _kpi_tables(k: KPIs, f: _Cells) -> list[Table]:
    c = k.coverage
    rows = [
        (
            "tagging compliance (lines)",
            "n/a" if k.tagging is None else f"{f.pct(k.tagging.by_count_pct)} of {k.tagging.lines}",
        ),
        ("tagging compliance (spend)", "n/a" if k.tagging is None else f.pct(k.tagging.by_spend_pct)),
        ("allocated directly", f"{f.money(c.direct)} ({f.pct(c.direct_pct)})"),
        ("allocated through shared stages", f"{f.money(c.shared)} ({f.pct(c.shared_pct)})"),
        ("unallocated", f"{f.money(c.unallocated)} ({f.pct(c.unallocated_pct)})"),
        ("budget variance (all budgets)", f.pct(k.total_budget_variance_pct)),
        ("forecast accuracy (MAPE)", f.pct(k.forecast_mape_pct)),
        ("GL recharge rate", f.pct(k.gl_recharge_rate_pct)),
    ]
    return [
        Table(f"KPIs {k.period} ({k.currency})", ("kpi", "value"), tuple(rows)),
        Table(
            "Budget variance",
            ("cost_center", "budget", "actual", "variance", "variance_pct"),
            tuple(
                (f.cc(v.cost_center), f.money(v.budget), f.money(v.actual), f.money(v.variance), f.pct(v.variance_pct))
                for v in k.budget_variance
            ),
        ),
        Table(
            "Forecast accuracy",
            ("cost_center", "forecast", "actual", "error_pct"),
            tuple(
                (f.cc(a.cost_center), f.money(a.forecast), f.money(a.actual), f.pct(a.error_pct))
                for a in k.forecast_accuracy
            ),
        ),
        Table(
            "Unit cost",
            ("driver", "cost_center", "cost", "quantity", "unit_cost"),
            tuple(
                (
                    u.driver,
                    f.cc(u.cost_center) if u.cost_center else "(all)",
                    f.money(u.cost),
                    str(u.quantity),
                    str(u.unit_cost),
                )
                for u in k.unit_costs
            ),
        ),
        Table(
            "Cost per engineer",
            ("cost_center", "cost", "headcount", "cost_per_engineer"),
            tuple(
                (
                    f.cc(u.cost_center) if u.cost_center else "(all)",
                    f.money(u.cost),
                    str(u.quantity),
                    f.money(u.unit_cost),
                )
                for u in k.cost_per_engineer
            ),
        ),
    ]


def _csv(tables: Sequence[Table]) -> str:
    """One rectangular CSV per report: a ``section`` column names the table each row belongs to."""
    width = max(len(t.header) for t in tables)
    rows = [(t.title, *row, *[""] * (width - len(row))) for t in tables for row in (t.header, *t.rows)]
    return csv_text(("section", *[f"c{i + 1}" for i in range(width)]), rows)


def _markdown(t: Table) -> str:
    def escape(c: str) -> str:
        return c.replace("|", "\\|")

    lines = [f"**{t.title}**", "", "| " + " | ".join(t.header) + " |", "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


def _text(t: Table) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in t.rows]) for i, h in enumerate(t.header)]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    return "\n".join([t.title, fmt(t.header), *(fmt(r) for r in t.rows)]) + "\n"
