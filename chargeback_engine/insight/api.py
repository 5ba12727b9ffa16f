"""The insight API: one object over stored periods, business metrics and the insight store.

Every ``chargeback report|budget|alerts`` command is one call on :class:`Insight`. Each
method gathers the inputs an analysis needs and calls the pure function that does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from chargeback_engine.compliance import TagReport, required_tags, tag_report
from chargeback_engine.components import Alert
from chargeback_engine.errors import InputError, PeriodError
from chargeback_engine.insight.alerts import (
    DEFAULT_THRESHOLDS,
    Channel,
    Delivery,
    anomaly_alerts,
    budget_alerts,
    deliver,
)
from chargeback_engine.insight.anomalies import AlertGate, Anomaly, detect_anomalies, gate
from chargeback_engine.insight.facts import ZERO, Facts
from chargeback_engine.insight.forecast import Forecast, ForecastError, forecast_cost_center
from chargeback_engine.insight.kpis import KPIs, Metric, kpis
from chargeback_engine.insight.persistence import InsightStore
from chargeback_engine.insight.render import jsonable
from chargeback_engine.insight.reports import ExecutiveSummary, TeamReport, executive_summary, percent, team_report
from chargeback_engine.insight.sources import StoredPeriods, read_cost_database, read_metrics, read_run_directory
from chargeback_engine.logs import get_logger
from chargeback_engine.money import minor_units
from chargeback_engine.periods import Period
from chargeback_engine.policy.policy_model import PolicySet

log = get_logger(__name__)


@dataclass
class Insight:
    """Reports, KPIs, budgets, alerts, anomalies and forecasts over a set of stored periods."""

    stored: StoredPeriods
    store: InsightStore
    metrics: tuple[Metric, ...] = ()
    #: The tags a line must carry, instead of the policy's ``spec.tags.required`` (empty: the policy's).
    required_tags: tuple[str, ...] = ()
    #: Cost centers in chargeback mode: their spend is what reaches the general ledger.
    chargeback_cost_centers: frozenset[str] | None = None
    alert_gate: AlertGate = field(default_factory=AlertGate)
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS
    #: Cost-center names by id (from the policies, else the cost database), shown beside the ids.
    names: dict[str, str] = field(default_factory=dict)
    #: The policies, when given: their ``spec.tags.required`` gives the dashboard's tag-compliance section.
    policies: PolicySet | None = None

    @classmethod
    def open(
        cls,
        runs: str | Path | None,
        *,
        db: str | None = None,
        metrics: str | Path | None = None,
        writable: bool = True,
        **options: Any,
    ) -> Insight:
        """Stored periods from the run directory ``runs``, or from the cost database ``db`` when ``runs`` is None.

        ``writable=False`` never creates the database: a missing SQLite file has no budgets.
        """
        stored = read_run_directory(runs) if runs is not None else read_cost_database(db)
        if options.get("chargeback_cost_centers") is None and stored.chargeback_cost_centers is not None:
            options["chargeback_cost_centers"] = stored.chargeback_cost_centers
        options["names"] = {**stored.names, **options.get("names", {})}
        return cls(stored, InsightStore(db, create=writable), read_metrics(metrics) if metrics else (), **options)

    @property
    def facts(self) -> Facts:
        return self.stored.facts

    @property
    def last_day(self) -> date:
        return max(f.day for f in self.facts.rows)

    def period(self, text: str | None = None) -> Period:
        """The named period, or the latest stored one."""
        return Period.parse(text) if text else self.facts.periods[-1]

    def budgets(self, period: Period) -> dict[str, Decimal]:
        return {cc: amount for (cc, p), amount in self.store.budgets().items() if p == str(period)}

    def team(self, cost_center: str, period: Period) -> TeamReport:
        if cost_center not in self.facts.cost_centers:
            known = ", ".join(self.facts.cost_centers)
            raise InputError(f"cost center {cost_center!r} has no cost in the stored periods (known: {known})")
        forecast = self._month_end(period).get(cost_center)
        return team_report(
            self.facts, cost_center, period, budget=self.budgets(period).get(cost_center), forecast=forecast
        )

    def executive(self, period: Period) -> ExecutiveSummary:
        return executive_summary(self.facts, period)

    def kpis(self, period: Period, tags: TagReport | None = None) -> KPIs:
        """Every KPI; tagging is ``tags`` (default: :meth:`tag_compliance`), journaled spend comes
        from the cost database, else from the chargeback cost centers."""
        journaled = self.stored.journaled.get(str(period))
        if journaled is None and self.chargeback_cost_centers is not None:
            by_cc = self.facts.by_cost_center(period)
            journaled = sum((by_cc.get(cc, ZERO) for cc in self.chargeback_cost_centers), ZERO)
        return kpis(
            self.facts,
            period,
            tags=self.tag_compliance(period) if tags is None else tags,
            budgets=self.budgets(period),
            forecasts=self.store.forecasts(),
            metrics=self.metrics,
            journaled=journaled,
        )

    def tag_compliance(self, period: Period) -> TagReport | None:
        """What ``chargeback report tags`` reports for ``period``, with the trend of the stored
        runs up to it; None without run outputs, or when neither the policy for it nor
        :attr:`required_tags` requires tags."""
        if self.policies is None or str(period) not in self.stored.run_dirs:
            return None
        try:
            policy = self.policies.for_period(period)
        except PeriodError:
            return None
        runs = [path for p, path in sorted(self.stored.run_dirs.items()) if p <= str(period)]
        if not (self.required_tags or required_tags(policy)):
            return None
        return tag_report(runs, policy, required=self.required_tags)

    def _need_daily(self, what: str) -> None:
        if not self.stored.daily:
            raise InputError(
                f"{what} need daily cost, which the cost database does not keep: read the run outputs (--runs DIR)"
            )

    def anomalies(self, *, since: date | None = None, by_service: bool = True) -> list[Anomaly]:
        self._need_daily("anomalies")
        return detect_anomalies(self.facts.daily("service" if by_service else "cost_center"), since=since)

    def forecasts(self, as_of: date | None = None, *, months: int = 3, save: bool = False) -> list[Forecast]:
        """Month-end and next-months forecasts per cost center from the days up to ``as_of``."""
        self._need_daily("forecasts")
        as_of = as_of or self.last_day
        found: list[Forecast] = []
        for (cc,), daily in self.facts.daily().items():
            if all(v == 0 for v in daily.values()):
                continue  # a pool that is fully redistributed has nothing to forecast
            try:
                found.extend(forecast_cost_center(cc, daily, as_of, months=months))
            except ForecastError as exc:
                log.info("no forecast", cost_center=cc, reason=str(exc))
        if save:
            self.store.save_forecasts(found)
        return found

    def _month_end(self, period: Period, as_of: date | None = None) -> dict[str, Decimal]:
        """Forecast month-end spend of a period that is still running on ``as_of``; none once it is complete."""
        as_of = as_of or min(self.last_day, _last_day(period))
        if not self.stored.daily or Period.of(as_of) != period or as_of == _last_day(period):
            return {}
        return {f.cost_center: f.amount for f in self.forecasts(as_of, months=0) if f.period == str(period)}

    def alerts(self, as_of: date | None = None) -> list[Alert]:
        """Budget alerts for the period of ``as_of`` (actual and forecast) plus gated anomalies of that period."""
        as_of = as_of or self.last_day
        period = Period.of(as_of)
        budgets = self.budgets(period)
        actuals = {
            cc: sum((v for d, v in daily.items() if period.start <= d <= as_of), ZERO)
            for (cc,), daily in self.facts.daily().items()
        }
        forecasts = self._month_end(period, as_of) if budgets else {}
        found = budget_alerts(period, budgets, actuals, forecasts, self.thresholds, self.facts.currency, self.names)
        if not self.stored.daily:
            return found
        anomalies = [a for a in self.anomalies(since=period.start) if a.day <= as_of]
        return found + anomaly_alerts(gate(anomalies, self.alert_gate), self.facts.currency, self.names)

    def send_alerts(self, channels: Sequence[Channel], as_of: date | None = None) -> tuple[list[Alert], Delivery]:
        found = self.alerts(as_of)
        return found, deliver(found, channels, self.store)

    def dashboard(self, period: Period) -> dict[str, Any]:
        """Everything the HTML dashboard draws, as JSON-ready data (the ``report json`` output)."""
        periods = [p for p in self.facts.periods if p <= period]
        teams = [cc for cc in self.facts.cost_centers if cc not in _buckets(self.facts)]
        budgets = self.budgets(period)
        daily = self.facts.daily()
        daily_data = self.stored.daily
        tags = self.tag_compliance(period)
        anomalies = gate([a for a in self.anomalies() if a.day < period.end], self.alert_gate) if daily_data else []
        latest = period == self.facts.periods[-1]
        as_of = min(self.last_day, _last_day(period))
        forecasts = (
            [f for f in self.forecasts(as_of, months=3) if _last_day(Period.parse(f.period)) > as_of]
            if daily_data and latest
            else []
        )  # a month already complete has nothing left to forecast
        dashboard: dict[str, Any] = jsonable(
            {
                "period": str(period),
                "currency": self.facts.currency,
                "currency_digits": minor_units(self.facts.currency),  # the unit invoices round to
                "as_of": as_of,
                "names": {cc: self.names.get(cc, cc) for cc in self.facts.cost_centers},
                "periods": [str(p) for p in periods],
                "cost_by_team": [{"name": cc, "values": [self.facts.total(p, cc) for p in periods]} for cc in teams],
                "direct_vs_shared": [
                    {"name": name, "values": [self.facts.by_coverage(p)[name] for p in periods]}
                    for name in ("direct", "shared", "unallocated")
                ],
                "unallocated_trend": [
                    {
                        "period": str(p),
                        "amount": self.facts.by_coverage(p)["unallocated"],
                        "pct": percent(self.facts.by_coverage(p)["unallocated"], self.facts.total(p)),
                    }
                    for p in periods
                ],
                "budget_burn": []
                if not daily_data
                else [
                    {"name": cc, "budget": budget, "days": _cumulative(daily.get((cc,), {}), period)}
                    for cc, budget in sorted(budgets.items())
                ],
                "daily": [
                    {
                        "name": cc,
                        "points": [{"day": d, "amount": v} for d, v in sorted(daily[(cc,)].items()) if d < period.end],
                    }
                    for cc in teams
                ]
                if daily_data
                else [],
                "anomalies": anomalies,
                "forecasts": forecasts,
                "executive": self.executive(period),
                "kpis": self.kpis(period, tags),
                "tag_compliance": None if tags is None else tags.as_json(),
                "cost_centers": [self._cost_center_page(cc, period, periods, anomalies) for cc in teams],
            }
        )
        return dashboard

    def _cost_center_page(
        self, cost_center: str, period: Period, periods: list[Period], anomalies: list[Anomaly]
    ) -> dict[str, Any]:
        """What a team lead's showback page shows: trend, top services and resources, invoice, anomalies."""
        report = team_report(self.facts, cost_center, period, budget=self.budgets(period).get(cost_center))
        return {
            "id": cost_center,
            "name": self.names.get(cost_center, cost_center),
            "trend": [{"period": str(p), "amount": self.facts.total(p, cost_center)} for p in periods],
            "total": report.total,
            "direct": report.direct,
            "shared": report.shared,
            "budget": report.budget,
            "top_services": report.top_services,
            "top_resources": [
                {"resource": r, "amount": a}
                for r, a in self.stored.top_resources.get(str(period), {}).get(cost_center, [])
            ],
            "invoices": self.store.invoices(str(period), cost_center),
            "anomalies": [a for a in anomalies if a.cost_center == cost_center],
        }


def _buckets(facts: Facts) -> set[str]:
    return {f.cost_center for f in facts.rows if f.coverage in ("unallocated", "pooled")}


def _last_day(period: Period) -> date:
    return date.fromordinal(period.end.toordinal() - 1)


def _cumulative(daily: dict[date, Decimal], period: Period) -> list[dict[str, Any]]:
    running = ZERO
    points = []
    for day in sorted(d for d in daily if period.start <= d < period.end):
        running += daily[day]
        points.append({"day": day, "cumulative": running})
    return points
