"""Insight reads what the engine writes: the bundled sample month through `chargeback run`."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.insight import Insight
from chargeback_engine.periods import Period
from chargeback_engine.plugins import build_registry, get_plugin_manager
from chargeback_engine.policy.loader import load_policies

REPO = Path(__file__).resolve().parents[2]


def test_reports_on_a_real_engine_run(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "2026-10"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--policy",
            str(REPO / "policies" / "acme.yaml"),
            "--input",
            str(REPO / "policies" / "data" / "acme-focus-2026-10.csv"),
            "--period",
            "2026-10",
            "--out",
            str(out),
            "--export",
            "focus-allocated",  # the source lines, for tagging compliance
        ],
    )
    assert result.exit_code == 0, result.output
    with (out / "summary.csv").open() as handle:
        summary = {row["cost_center"]: Decimal(row["amount"]) for row in csv.DictReader(handle)}

    insight = Insight.open(
        tmp_path / "runs",
        db=f"sqlite:///{tmp_path / 'insight.db'}",
        chargeback_cost_centers=frozenset({"CC-1004"}),
        required_tags=("cost-center",),
        policies=load_policies([REPO / "policies" / "acme.yaml"], build_registry(get_plugin_manager())),
    )
    october = Period(2026, 10)
    executive = insight.executive(october)
    assert executive.total.current == sum(summary.values())
    assert {t.name: t.current for t in executive.by_team} == {
        cc: amount for cc, amount in summary.items() if cc.startswith("CC-10")
    }
    kpis = insight.kpis(october)
    assert kpis.coverage.unallocated == summary["UNALLOCATED"]
    assert kpis.tagging is not None and 0 < kpis.tagging.by_count_pct < 100
    assert kpis.gl_recharge_rate_pct is not None
