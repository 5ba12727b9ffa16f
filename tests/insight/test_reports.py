"""Team report, executive summary and KPIs on the seeded six-month sample.

Expected figures are recomputed straight from the stored Parquet ledgers with DuckDB, an
independent path from the facts the reports use.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet
import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.errors import InputError
from chargeback_engine.insight import Insight, read_metrics
from chargeback_engine.insight.reports import change_percent, percent
from chargeback_engine.periods import Period

OCT, SEP = Period(2026, 10), Period(2026, 9)
POLICY = Path(__file__).resolve().parents[2] / "policies" / "acme.yaml"


def ledger_total(sample_dir: Path, period: Period, where: str = "TRUE") -> Decimal:
    query = f"SELECT coalesce(sum(amount), 0) FROM read_parquet('{sample_dir / str(period) / 'allocations.parquet'}') WHERE {where}"
    return duckdb.sql(query).fetchall()[0][0]


def test_team_report_against_the_ledger(insight: Insight, sample_dir: Path) -> None:
    report = insight.team("CC-1003", OCT)
    now, before = (
        ledger_total(sample_dir, OCT, "cost_center = 'CC-1003'"),
        ledger_total(sample_dir, SEP, "cost_center = 'CC-1003'"),
    )
    assert (report.total.current, report.total.previous) == (now, before)
    assert report.total.change_pct == ((now - before) * 100 / before).quantize(Decimal("0.1"))
    assert report.direct + report.shared == now
    assert report.shared == ledger_total(sample_dir, OCT, "cost_center = 'CC-1003' AND stage > 0")
    top = report.top_services
    assert len(top) == 5 and [s.current for s in top] == sorted((s.current for s in top), reverse=True)
    assert top[0].current == ledger_total(
        sample_dir, OCT, f"cost_center = 'CC-1003' AND service_name = '{top[0].name}'"
    )
    assert [t.period for t in report.trend] == ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
    assert report.trend[-1].amount == now
    budget = insight.budgets(OCT)["CC-1003"]
    assert report.budget is not None and report.budget.budget == budget
    assert report.budget.utilisation_pct == percent(now, budget) and report.budget.utilisation_pct > 100


def test_executive_summary(insight: Insight, sample_dir: Path) -> None:
    summary = insight.executive(OCT)
    assert summary.total.current == ledger_total(sample_dir, OCT)
    assert [t.name for t in summary.by_team] == ["CC-1001", "CC-1002", "CC-1003", "CC-1004"]  # no pool, no bucket
    assert summary.unallocated == ledger_total(sample_dir, OCT, "category = 'unallocated'") > 0
    assert sum((t.current for t in summary.by_team), summary.unallocated) == summary.total.current
    assert summary.top_by_cost[0].name == "CC-1003"
    assert summary.top_by_growth[0].name == "CC-1003"  # the RDS level shift
    changes = [t.change for t in summary.top_by_growth]
    assert changes == sorted(changes, reverse=True)


def test_kpis(insight: Insight, sample_dir: Path) -> None:
    k = insight.kpis(OCT)
    total = ledger_total(sample_dir, OCT)
    c = k.coverage
    assert c.direct + c.shared + c.unallocated + c.pooled == total
    assert c.shared == ledger_total(sample_dir, OCT, "stage > 0 AND cost_center <> 'CC-9000'")
    assert c.unallocated_pct == percent(ledger_total(sample_dir, OCT, "category = 'unallocated'"), total)
    assert k.tagging is None  # no policy says which tags are required
    overrun = {v.cost_center: v for v in k.budget_variance}["CC-1003"]
    assert overrun.variance == overrun.actual - overrun.budget > 0
    metrics = read_metrics(sample_dir / "metrics.csv")
    transactions = next(m.value for m in metrics if m.period == "2026-10" and m.name == "transactions")
    assert [(u.driver, u.unit_cost) for u in k.unit_costs] == [
        ("transactions", (total / transactions).quantize(Decimal("0.0001")))
    ]
    per_engineer = {u.cost_center: u for u in k.cost_per_engineer}
    assert set(per_engineer) == {"CC-1001", "CC-1002", "CC-1003", "CC-1004"}
    assert per_engineer["CC-1002"].unit_cost == (
        per_engineer["CC-1002"].cost / per_engineer["CC-1002"].quantity
    ).quantize(Decimal("0.0001"))
    journaled = ledger_total(sample_dir, OCT, "cost_center IN ('CC-1001', 'CC-1003')")
    assert k.gl_recharge_rate_pct == percent(journaled, total)


def test_forecast_accuracy_compares_stored_forecasts_with_actuals(insight: Insight) -> None:
    insight.forecasts(date(2026, 9, 15), months=0, save=True)
    accuracy = {a.cost_center: a for a in insight.kpis(SEP).forecast_accuracy}
    assert {"CC-1001", "CC-1002", "CC-1003", "CC-1004"} <= set(accuracy)
    for a in accuracy.values():
        assert a.actual == insight.facts.by_cost_center(SEP)[a.cost_center]
        assert a.error_pct is not None and a.error_pct < 10
    assert insight.kpis(SEP).forecast_mape_pct is not None


@pytest.mark.parametrize("flag", [(), ("--required-tag", "team")])
def test_the_tagging_kpi_is_the_compliance_report_tags_shows(
    flag: tuple[str, ...], sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One computation: ``report kpis`` (and the dashboard's tile) shows the headline of
    ``report tags`` on the same runs; ``--required-tag`` replaces the policy's required tags."""
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'insight.db'}")
    required = flag[1:] or ("cost-center",)
    policies = {}
    for tags in ("cost-center", required[0]):
        policies[tags] = tmp_path / f"requires-{tags}.yaml"
        aliases = "    aliases: {costcenter: cost-center}\n"
        policies[tags].write_text(POLICY.read_text().replace(aliases, aliases + f"    required: [{tags}]\n"))
    shutil.copytree(POLICY.parent / "drivers", tmp_path / "drivers", dirs_exist_ok=True)

    def json_of(*args: str) -> dict:
        result = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    kpis = json_of("report", "kpis", "--runs", str(sample_dir), "--policy", str(policies["cost-center"]), *flag)
    tags = json_of("report", "tags", "--run", str(sample_dir / "2026-10"), "--policy", str(policies[required[0]]))
    [total] = tags["total"]
    assert kpis["tagging"] == {
        "required": list(required),
        "lines": total["lines"],
        "compliant_lines": total["compliant_lines"],
        "by_count_pct": total["pct_lines"],
        "spend": total["spend"],
        "compliant_spend": total["compliant_spend"],
        "by_spend_pct": total["pct_spend"],
    }
    assert Decimal(kpis["tagging"]["spend"]) > 0 and kpis["tagging"]["by_spend_pct"] is not None


def test_required_tag_needs_a_policy(sample_dir: Path) -> None:
    result = CliRunner().invoke(main, ["report", "kpis", "--runs", str(sample_dir), "--required-tag", "team"])
    assert result.exit_code == 2 and "--required-tag needs --policy" in result.output


def test_percents_are_none_on_a_zero_base() -> None:
    assert percent(Decimal(5), Decimal(0)) is None
    assert change_percent(Decimal(5), Decimal(0)) is None
    assert change_percent(Decimal(-5), Decimal(-10)) == Decimal("50.0")


def test_a_bad_metrics_row_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("period,cost_center,metric,value\n2026-10,,transactions,12\n2026-10,CC-1,headcount,many\n")
    with pytest.raises(InputError, match=r"metrics.csv:3: column 'value': 'many' is not a number"):
        read_metrics(path)


def test_a_ledger_without_a_needed_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "2026-10").mkdir()
    pa.parquet.write_table(pa.table({"period": ["2026-10"]}), tmp_path / "2026-10" / "allocations.parquet")
    with pytest.raises(InputError, match=r"allocations.parquet: ledger column 'charge_period_start' is missing"):
        Insight.open(tmp_path, db=f"sqlite:///{tmp_path / 'x.db'}")
