"""The report, budget and alerts commands on the sample: every format, exit codes, exactly-once alerts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main


@pytest.fixture
def run(sample_dir: Path, tmp_path: Path):
    env = {"CHARGEBACK_DB": f"sqlite:///{tmp_path / 'cli.db'}", "CHARGEBACK_RUNS": str(sample_dir)}

    def invoke(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    invoke("budget", "import", str(sample_dir / "budgets.csv"))
    return invoke


def test_team_report_in_every_format(run) -> None:
    text = run("report", "team", "--cost-center", "CC-1003")
    assert "Team report CC-1003 2026-10 (USD)" in text and "Six-month trend" in text and "budget used" in text
    data = json.loads(run("report", "team", "--cost-center", "CC-1003", "--format", "json"))
    assert data["period"] == "2026-10" and len(data["trend"]) == 6 and len(data["top_services"]) == 5
    rows = list(csv.reader(io.StringIO(run("report", "team", "--cost-center", "CC-1003", "--format", "csv"))))
    assert rows[0][0] == "section" and any(r[0] == "Top services" for r in rows[1:])
    markdown = run("report", "team", "--cost-center", "CC-1003", "--period", "2026-09", "--format", "markdown")
    assert (
        "**Team report CC-1003 2026-09 (USD)**" in markdown and "| name | current | previous | change_pct |" in markdown
    )


def test_exec_and_kpis(run, sample_dir: Path) -> None:
    assert "Top teams by growth" in run("report", "exec", "--format", "markdown")
    kpis = json.loads(run("report", "kpis", "--format", "json", "--metrics", str(sample_dir / "metrics.csv")))
    assert kpis["tagging"] is None and kpis["unit_costs"][0]["driver"] == "transactions"  # no policy requires tags


def test_alerts_are_sent_once(run) -> None:
    check = ("alerts", "check", "--as-of", "2026-10-21", "--format", "json")
    first, _ = json.JSONDecoder().raw_decode(run(*check))  # then the counts, on stderr
    assert {a["kind"] for a in first} == {"budget-actual", "budget-forecast", "anomaly"}
    again, _ = json.JSONDecoder().raw_decode(run(*check))
    assert again == []
    assert len(run("alerts", "sent").splitlines()) == len(first)


def test_bad_input_exits_non_zero_with_the_reason(run, tmp_path: Path) -> None:
    bad = tmp_path / "budgets.csv"
    bad.write_text("cost_center,period,amount\nCC-1,2026-13,10\n")
    assert "budgets.csv:2: column 'period'" in run("budget", "import", str(bad), code=1)
    assert "no stored periods" in run("report", "exec", "--runs", str(tmp_path), code=1)
    assert "cost center 'CC-NOPE' has no cost" in run("report", "team", "--cost-center", "CC-NOPE", code=1)
    notifiers = tmp_path / "notifiers.yaml"
    notifiers.write_text("notifiers:\n  - {type: webhook}\n")
    assert "'url' is a required property" in run("alerts", "check", "--notifiers", str(notifiers), code=1)
