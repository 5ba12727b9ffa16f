"""The finance commands end to end, each a thin call into the library."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from chargeback_engine.cli import main
from tests.finance.builders import MONTH, ledger_table

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: acme, version: "2026.1", effective: {from: 2026-01-01}}
spec:
  currency: USD
  unallocated: UNALLOCATED
  cost_centers:
    - {id: CC-100, name: Backend, mode: chargeback, gl_account: "6420", entity: ACME-US}
    - {id: CC-200, name: Data, mode: chargeback, gl_account: "6430", entity: ACME-DE}
    - {id: CC-300, name: Research, mode: showback}
    - {id: CC-400, name: Mobile, mode: auto, entity: ACME-US}
  rules: []
"""

SETTINGS = """\
payer_entity: ACME-US
markups: [{from: ACME-US, to: ACME-DE, rate: "0.05"}]
dispute_assignees: {usage: cloud-ops}
"""


@pytest.fixture
def workspace(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "acme.yaml").write_text(POLICY)
    (tmp_path / "finance.yaml").write_text(SETTINGS)
    for period in ("2026-01", "2026-02"):
        pq.write_table(ledger_table(period, MONTH), tmp_path / f"{period}.parquet")
    monkeypatch.setenv("CHARGEBACK_DB", db_url)
    monkeypatch.setenv("CHARGEBACK_FINANCE_SETTINGS", str(tmp_path / "finance.yaml"))
    return tmp_path


def run(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_month_end_through_the_cli(workspace: Path) -> None:
    ingest = (
        "ledger",
        "ingest",
        "--ledger",
        workspace / "2026-01.parquet",
        "--policy",
        workspace / "acme.yaml",
        "--period",
        "2026-01",
        "--source-version",
        "focus.csv=v1",
    )
    first = run(*ingest)
    assert first.exit_code == 0 and ": recorded" in first.output
    assert "already recorded (nothing written)" in run(*ingest).output

    closed = run("period", "close", "--period", "2026-01")
    assert closed.exit_code == 0, closed.output
    assert "2026-01 closed: 2 invoices" in closed.output
    assert (
        "USD: period total 221.97 USD = invoice subtotals 167.35 USD + showback 53.61 USD + unallocated 1.01 USD"
        in closed.output
    )
    assert "USD: 2 invoices total 169.71 USD = subtotals 167.35 USD + markup 2.36 USD" in closed.output
    assert "was already closed" in run("period", "close", "--period", "2026-01").output

    assert run("period", "report", "--period", "2026-01", "--out", workspace / "report").exit_code == 0
    summary = json.loads((workspace / "report" / "statement_2026-01.json").read_text())
    showback = {c["cost_center"]: c["amount"] for c in summary["cost_centers"] if c["treatment"] == "showback"}
    assert showback == {"CC-300": "33.33", "CC-400": "20.28"}  # CC-400 is auto, and 38% tagged
    assert (
        Decimal(summary["totals"]["USD"]["exact"]) == Decimal("221.970456789")
        and summary["totals"]["USD"]["rounded"] == "221.97"
    )
    lines = list(csv.DictReader((workspace / "report" / "statement_2026-01.csv").open()))
    assert sum(Decimal(l["amount"]) for l in lines) == Decimal("221.97")

    listed = run("invoice", "list", "--period", "2026-01")
    assert any("2026-01/CC-200/USD" in line and line.endswith(" 49.58 USD") for line in listed.output.splitlines())
    out = workspace / "invoices"
    assert run("invoice", "render", "--period", "2026-01", "--out", out, "--format", "html").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "2026-01_CC-100_USD.html",
        "2026-01_CC-200_USD.html",
        "manifest.json",
    ]
    for erp in ("sap", "oracle", "netsuite", "workday", "canonical"):
        exported = run("journal", "export", "--period", "2026-01", "--erp", erp, "--out", workspace / erp)
        assert exported.exit_code == 0, exported.output
        assert json.loads((workspace / erp / "manifest.json").read_text())["erp"] == erp
    assert "journal unchanged" in run("journal", "correct", "--period", "2026-01").output

    submitted = run(
        "dispute",
        "submit",
        "--period",
        "2026-01",
        "--cost-center",
        "CC-100",
        "--type",
        "usage",
        "--amount",
        "5.00",
        "--description",
        "double counted",
        "--by",
        "alice",
        "--at",
        "2026-02-02T10:00:00Z",
    )
    assert "submitted  assigned to cloud-ops  due 2026-02-07T10:00:00Z" in submitted.output
    dispute_id = submitted.output.split()[0]
    assert "under_review" in run("dispute", "review", dispute_id, "--by", "bob").output
    assert "1 comments" in run("dispute", "comment", dispute_id, "--by", "bob", "--text", "checking").output
    assert "credit 4.00 USD" in run("dispute", "approve", dispute_id, "--by", "carol", "--credit", "4").output
    refused = CliRunner().invoke(main, ["dispute", "escalate", dispute_id, "--by", "alice"])
    assert refused.exit_code == 1 and "is approved: cannot escalate it (allowed: resolve)" in refused.output
    listed = json.loads(run("dispute", "list", "--json").output)
    assert [(d["status"], d["credit"]) for d in listed] == [("approved", "4.00")]
    assert json.loads(run("dispute", "report", "--at", "2026-02-20T00:00:00Z", "--format", "json").output)["by_type"][
        "usage"
    ]["credited"] == {"USD": "4.00"}

    run(
        "ledger",
        "ingest",
        "--ledger",
        workspace / "2026-02.parquet",
        "--policy",
        workspace / "acme.yaml",
        "--period",
        "2026-02",
        "--source-version",
        "focus.csv=v1",
    )
    feb = run("period", "close", "--period", "2026-02")
    assert "invoice subtotals 163.35 USD" in feb.output and "unallocated 5.01 USD" in feb.output
    statuses = json.loads(run("period", "status", "--format", "json").output)
    assert [(s["period"], s["closed"]) for s in statuses] == [("2026-01", True), ("2026-02", True)]
    assert statuses[1]["closed_run"].startswith("run-")
    verified = run("audit", "verify", "--witness", out / "manifest.json")
    assert verified.exit_code == 0 and "audit chain intact" in verified.output
    assert f"checked against {out / 'manifest.json'} (record 6)" in verified.output


def test_cli_errors_exit_non_zero_with_the_reason(workspace: Path) -> None:
    result = CliRunner().invoke(main, ["period", "close", "--period", "2026-01"])
    assert result.exit_code == 1 and "no run has been recorded for period 2026-01" in result.output
    result = CliRunner().invoke(main, ["period", "close", "--period", "2026-13"])
    assert result.exit_code == 2 and "is not of the form YYYY-MM" in result.output
    (workspace / "bad.yaml").write_text("payer_entitty: X\n")
    result = CliRunner().invoke(main, ["period", "status", "--settings", str(workspace / "bad.yaml")])
    assert result.exit_code == 1 and "bad.yaml:1:1: $.payer_entitty: unknown setting" in result.output
    result = CliRunner().invoke(
        main,
        [
            "ledger",
            "ingest",
            "--ledger",
            str(workspace / "2026-01.parquet"),
            "--policy",
            str(workspace / "acme.yaml"),
            "--period",
            "2026-01",
        ],
    )
    assert result.exit_code == 1 and "a run needs source versions" in result.output
