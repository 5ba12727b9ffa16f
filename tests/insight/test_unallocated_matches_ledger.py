"""Insight's unallocated figures equal the ledger's, however the money reached the bucket.

A catch-all tag rule whose fallback is the unallocated bucket puts almost the whole bill
there while every ledger row says ``direct``; the reports must still call it unallocated.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from chargeback_engine import Engine
from chargeback_engine.cli import main
from chargeback_engine.insight import Insight
from chargeback_engine.periods import Period

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "policies" / "data" / "acme-focus-2026-10.csv"

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: fallback, version: "1", effective: {from: 2026-10-01}}
spec:
  currency: USD
  cost_column: BilledCost
  unallocated: NOBODY
  cost_centers:
    - {id: CC-1001, name: Payments}
    - {id: NOBODY, name: Unallocated}
  rules:
    - id: by-tag
      priority: 1
      when: {}
      allocate: {method: tag, keys: [team], map: {payments: CC-1001}}
"""


def test_a_tag_fallback_into_the_bucket_is_reported_as_unallocated(tmp_path: Path) -> None:
    policy = tmp_path / "fallback.yaml"
    policy.write_text(POLICY)
    result = Engine(policy).run([SAMPLE], "2026-10", out=tmp_path / "runs" / "2026-10")
    ledger = {cc: amount for cc, _, amount in result.summary()}
    assert set(result.ledger["category"].to_pylist()) <= {"direct", "credit"}  # no row says "unallocated"
    total = sum(ledger.values(), Decimal(0))
    assert ledger["NOBODY"] > total * Decimal("0.9")

    insight = Insight.open(tmp_path / "runs", db=f"sqlite:///{tmp_path / 'insight.db'}")
    period = Period(2026, 10)
    assert insight.executive(period).unallocated == ledger["NOBODY"]
    assert insight.kpis(period).coverage.unallocated == ledger["NOBODY"]
    assert "NOBODY" not in {line.name for line in insight.executive(period).by_team}

    runner = CliRunner()
    env = {"CHARGEBACK_RUNS": str(tmp_path / "runs"), "CHARGEBACK_DB": f"sqlite:///{tmp_path / 'cli.db'}"}
    shown = runner.invoke(main, ["report", "exec", "--period", "2026-10"], env=env).output
    share = (ledger["NOBODY"] / total * 100).quantize(Decimal("0.1"))
    assert f"{ledger['NOBODY'].quantize(Decimal('0.01')):,}" in shown and f"{share}%" in shown


def test_the_cost_database_names_its_bucket_too(tmp_path: Path) -> None:
    from chargeback_engine.costdb.connection import open_database
    from chargeback_engine.finance import ingest_run
    from chargeback_engine.insight.sources import read_cost_database
    from tests.finance.builders import run_input

    url = f"sqlite:///{tmp_path / 'books.db'}"
    books = open_database(url)
    ingest_run(
        books,
        run_input(
            "2026-01", [("CC-100", "EC2", "10", "direct", "tag"), ("UNALLOCATED", "EC2", "90.5", "direct", "tag")]
        ),
    )  # a tag fallback
    books.dispose()
    facts = read_cost_database(url).facts
    assert facts.by_coverage(Period(2026, 1))["unallocated"] == Decimal("90.5")
