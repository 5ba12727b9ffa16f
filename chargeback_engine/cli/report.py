"""``chargeback report``, ``chargeback budget`` and ``chargeback alerts``: thin calls into :mod:`chargeback_engine.insight`."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from chargeback_engine import display
from chargeback_engine.cli.defaults import db_option
from chargeback_engine.cli.output import Column, echo_json, echo_table, format_option
from chargeback_engine.components import Alert
from chargeback_engine.errors import ChargebackError
from chargeback_engine.insight import (
    Channel,
    Insight,
    read_budgets,
    read_channels,
    render,
    write_dashboard,
    write_sample,
)
from chargeback_engine.insight.persistence import InsightStore
from chargeback_engine.insight.render import FORMATS
from chargeback_engine.periods import Period
from chargeback_engine.policy.loader import load_policies


def _errors_exit_nonzero(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChargebackError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _insight_options(command: Callable[..., Any], *, writable: bool = False) -> Callable[..., Any]:
    """The options every insight command shares; they become one :class:`Insight`.

    Only a ``writable`` command (one that stores forecasts or sent alerts) may create the database.
    """

    @click.option(
        "--runs",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar="CHARGEBACK_RUNS",
        help="Directory of stored periods: YYYY-MM/allocations.parquet per period (daily detail). "
        "Also CHARGEBACK_RUNS. Without it, periods are read from the cost database (--db).",
    )
    @db_option
    @click.option(
        "--metrics",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="Business metrics CSV: period,cost_center,metric,value (drivers and 'headcount').",
    )
    @click.option(
        "--policy",
        "policies",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help="Policy files: cost-center names, chargeback-mode cost centers give the GL recharge rate, "
        "spec.tags.required the dashboard's tag-compliance section.",
    )
    @click.option(
        "--required-tag",
        "required_tags",
        multiple=True,
        help="Tag a line needs to count as tagged (repeatable), instead of the policy's spec.tags.required; "
        "needs --policy.",
    )
    @functools.wraps(command)
    def wrapper(
        runs: Path,
        db: str | None,
        metrics: Path | None,
        policies: tuple[Path, ...],
        required_tags: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        can_write = writable or kwargs.get("save", False)  # report forecast --save stores its forecasts
        if required_tags and not policies:
            raise click.UsageError("--required-tag needs --policy: tag compliance is counted as its policy says")
        chargeback, names, loaded = None, {}, None
        if policies:
            registry = click.get_current_context().obj.registry
            loaded = load_policies(policies, registry)
            cost_centers = [cc for p in loaded.policies for cc in p.cost_centers]
            chargeback = frozenset(cc.id for cc in cost_centers if cc.mode == "chargeback")
            names = {cc.id: cc.name for cc in cost_centers}
        insight = Insight.open(
            runs,
            db=db,
            metrics=metrics,
            required_tags=required_tags,
            chargeback_cost_centers=chargeback,
            names=names,
            policies=loaded,
            writable=can_write,
        )
        return command(insight, **kwargs)

    return _errors_exit_nonzero(wrapper)


_format = click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
_period = click.option("--period", default=None, metavar="YYYY-MM", help="Default: the latest stored period.")
_as_of = click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Replay as of this day (YYYY-MM-DD). Default: the last day with data.",
)


def _day(value: Any) -> date | None:
    return None if value is None else value.date()


@click.group("report")
def report() -> None:
    """Team reports, the executive summary, KPIs, anomalies, forecasts and the dashboard."""


@report.command("team")
@_insight_options
@click.option("--cost-center", required=True)
@_period
@_format
def report_team(insight: Insight, cost_center: str, period: str | None, fmt: str) -> None:
    """One team: this period against the last, top services, budget use, six-month trend."""
    click.echo(
        render(insight.team(cost_center, insight.period(period)), fmt, insight.facts.currency, insight.names), nl=False
    )


@report.command("exec")
@_insight_options
@_period
@_format
def report_exec(insight: Insight, period: str | None, fmt: str) -> None:
    """Total cost, cost by team, top teams by cost and by growth, unallocated cost."""
    click.echo(render(insight.executive(insight.period(period)), fmt, insight.facts.currency, insight.names), nl=False)


@report.command("kpis")
@_insight_options
@_period
@_format
def report_kpis(insight: Insight, period: str | None, fmt: str) -> None:
    """Tagging compliance, allocation coverage, budget variance, forecast accuracy, unit costs, GL recharge rate."""
    click.echo(render(insight.kpis(insight.period(period)), fmt, insight.facts.currency, insight.names), nl=False)


@report.command("anomalies")
@_insight_options
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Report anomalies from this day on.")
@_format
def report_anomalies(insight: Insight, since: Any, fmt: str) -> None:
    """Unusual days of cost per cost center and service (detection only; alerts apply the gates)."""
    click.echo(render(insight.anomalies(since=_day(since)), fmt, insight.facts.currency, insight.names), nl=False)


@report.command("forecast")
@_insight_options
@_as_of
@click.option(
    "--months", type=click.IntRange(0, 12), default=3, show_default=True, help="Months after the current one."
)
@click.option(
    "--save/--no-save", default=True, show_default=True, help="Store the forecasts (for the forecast-accuracy KPI)."
)
@_format
def report_forecast(insight: Insight, as_of: Any, months: int, save: bool, fmt: str) -> None:
    """Month-end and next-months forecasts per cost center, with 90% intervals."""
    click.echo(
        render(insight.forecasts(_day(as_of), months=months, save=save), fmt, insight.facts.currency, insight.names),
        nl=False,
    )


@report.command("json")
@_insight_options
@_period
def report_json(insight: Insight, period: str | None) -> None:
    """The dashboard's data as JSON."""
    click.echo(json.dumps(insight.dashboard(insight.period(period)), indent=2, sort_keys=True))


@report.command("html")
@_insight_options
@_period
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The HTML file to write.")
def report_html(insight: Insight, period: str | None, out: Path) -> None:
    """Write a self-contained static HTML dashboard (works offline)."""
    click.echo(write_dashboard(insight.dashboard(insight.period(period)), out))


@report.command("sample")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=6, show_default=True)
def report_sample(out: Path, seed: int) -> None:
    """Write six seeded months of stored periods, metrics.csv and budgets.csv to try the reports on."""
    click.echo(write_sample(out, seed=seed))


@click.group("budget")
def budget() -> None:
    """Budgets per cost center per period."""


def _amount(_ctx: click.Context, _param: click.Parameter, value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise click.BadParameter(f"{value!r} must be a finite amount, at least 0")
    return amount


@budget.command("set")
@db_option
@click.option("--cost-center", required=True)
@click.option("--period", required=True, metavar="YYYY-MM")
@click.option("--amount", required=True, callback=_amount)
@_errors_exit_nonzero
def budget_set(db: str | None, cost_center: str, period: str, amount: Decimal) -> None:
    """Set (or replace) one budget."""
    InsightStore(db).set_budget(cost_center, str(Period.parse(period)), amount)


@budget.command("import")
@db_option
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_errors_exit_nonzero
def budget_import(db: str | None, csv_file: Path) -> None:
    """Set every budget in a CSV file with the columns cost_center,period,amount."""
    InsightStore(db).set_budgets(read_budgets(csv_file))


@budget.command("list")
@db_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("table", "json", "csv")),
    default="table",
    show_default=True,
    help="csv is what budget import reads.",
)
@_errors_exit_nonzero
def budget_list(db: str | None, output_format: str) -> None:
    """Every budget (a database that does not exist has none, and is not created)."""
    found = sorted(InsightStore(db, create=False).budgets().items())
    if output_format == "json":
        echo_json([{"cost_center": cc, "period": period, "amount": amount} for (cc, period), amount in found])
    elif output_format == "csv":
        click.echo("cost_center,period,amount")
        for (cc, period), amount in found:
            click.echo(f"{cc},{period},{amount}")
    else:
        echo_table(
            [Column("cost center"), Column("period"), Column("amount", numeric=True)],
            [(cc, period, display.number(amount, 2)) for (cc, period), amount in found],
        )


@click.group("alerts")
def alerts() -> None:
    """Budget threshold and anomaly alerts, sent through notifier plugins at most once."""


class _Stdout:
    """The default channel, stdout (id ``json``, as before): sending only claims the alert; the
    command prints every alert sent now afterwards, since a JSON array or a table is one document."""

    name = "stdout"
    options_schema: Mapping[str, Any] = {}

    def send(self, alert: Alert, options: Any) -> None:
        pass


@alerts.command("check")
@functools.partial(_insight_options, writable=True)
@_as_of
@click.option(
    "--notifiers",
    "config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="YAML or JSON: {notifiers: [{type: webhook, url: ...}, ...]}. Default: stdout, in --format.",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    type=click.IntRange(1, 1000),
    help="Budget thresholds in percent (repeatable). Default: 80 and 100.",
)
@click.option(
    "--min-impact",
    callback=lambda c, p, v: None if v is None else _amount(c, p, v),
    default=None,
    help="Anomaly gate: minimum absolute impact (default 100).",
)
@click.option(
    "--min-impact-pct",
    callback=lambda c, p, v: None if v is None else _amount(c, p, v),
    default=None,
    help="Anomaly gate: minimum impact in percent of the expected cost (default 20).",
)
@format_option
@click.pass_context
def alerts_check(
    ctx: click.Context,
    insight: Insight,
    as_of: Any,
    config: Path | None,
    thresholds: tuple[int, ...],
    min_impact: Decimal | None,
    min_impact_pct: Decimal | None,
    output_format: str,
) -> None:
    """Find the alerts of the period and send those not sent before; print the alerts sent now
    (without --notifiers, stdout is the channel); exit 1 if any delivery failed."""
    if thresholds:
        insight.thresholds = tuple(Decimal(t) for t in thresholds)
    if min_impact is not None or min_impact_pct is not None:
        insight.alert_gate = type(insight.alert_gate)(
            min_impact if min_impact is not None else insight.alert_gate.min_impact,
            min_impact_pct if min_impact_pct is not None else insight.alert_gate.min_impact_pct,
        )
    registry = ctx.find_root().obj.registry
    known = registry.notifiers
    # Without --notifiers, stdout is the channel: the host's own, not a plugin's.
    targets = [Channel("json", _Stdout(), {}, "chargeback-engine")] if config is None else read_channels(config, known)
    found, delivery = insight.send_alerts(targets, _day(as_of))
    sent = {alert_id for alert_id, _ in delivery.sent}
    shown = [a for a in found if a.alert_id in sent]
    if output_format == "json":
        echo_json([a.as_dict() for a in shown])
    else:
        echo_table(
            [Column("kind"), Column("alert")],
            [(a.kind, a.message) for a in shown],
        )
    click.echo(
        f"{len(found)} alerts: {len(delivery.sent)} sent, {len(delivery.skipped)} already sent, "
        f"{len(delivery.failed)} failed",
        err=True,
    )
    for alert_id, channel, error in delivery.failed:
        click.echo(f"alert {alert_id} on {channel}: {error}", err=True)
    if delivery.failed:
        sys.exit(1)


@alerts.command("sent")
@db_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("table", "json", "jsonl")),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object a line, as the json notifier writes them.",
)
@_errors_exit_nonzero
def alerts_sent(db: str | None, output_format: str) -> None:
    """Every alert sent so far (a database that does not exist has none, and is not created)."""
    rows = InsightStore(db, create=False).sent()
    if output_format == "json":
        echo_json(rows)
    elif output_format == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
    else:
        echo_table(
            [Column("period"), Column("kind"), Column("alert"), Column("channel")],
            [(r["period"], r["kind"], r["alert_id"], r["channel"]) for r in rows],
        )


@click.command("anomalies")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--series", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--threshold", type=float, default=4.0, show_default=True, help="Detection threshold (|score|).")
def bench_anomalies(seed: int, series: int, threshold: float) -> None:
    """Anomaly detection quality on seeded series with injected spikes and level shifts."""
    from chargeback_engine.insight.evaluate import evaluate_detection

    q = evaluate_detection(seed=seed, series=series, threshold=threshold)
    click.echo(
        f"series {q.series} x {q.days} days: precision {q.precision:.3f} recall {q.recall:.3f} "
        f"false-positive rate {q.false_positive_rate:.4f} (tp {q.true_positives} fp {q.false_positives} "
        f"fn {q.false_negatives} tn {q.true_negatives})"
    )


@click.command("forecast")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--series", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--as-of-day", type=click.IntRange(1, 30), default=15, show_default=True)
def bench_forecast(seed: int, series: int, as_of_day: int) -> None:
    """Month-end forecast backtest on seeded series: MAPE and interval coverage."""
    from chargeback_engine.insight.evaluate import backtest_month_end

    q = backtest_month_end(seed=seed, series=series, as_of_day=as_of_day)
    click.echo(
        f"series {q.series}: month-end MAPE {q.mape_pct:.2f}% from day {as_of_day}, "
        f"90% interval coverage {q.interval_coverage:.2f}"
    )
