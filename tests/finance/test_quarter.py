"""Done when: a quarter through the real engine on FOCUS files, with a late restatement and a dispute.

January closes; its FOCUS file is then restated by the provider; a dispute on January's
invoice is approved. February must carry both the restatement (as adjustments referencing
January) and the credit note; January must be unchanged. Every month, invoices + showback +
unallocated equal the source total to the cent, and every journal balances.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from chargeback_engine.engine.runner import Engine
from chargeback_engine.finance import (
    RunInput,
    close_period,
    export_journal,
    ingest_run,
    load_journal,
    statement,
    submit_dispute,
    transition,
    verify_audit_chain,
)
from chargeback_engine.finance.journal import check_balanced
from chargeback_engine.finance.rounding import round_total
from chargeback_engine.finance.settings import FinanceSettings

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: quarter, version: "2026.1", effective: {from: 2026-01-01}}
spec:
  currency: USD
  cost_column: BilledCost
  unallocated: UNALLOCATED
  cost_centers:
    - {id: CC-100, name: Payments, mode: chargeback, gl_account: "6420", entity: ACME-US}
    - {id: CC-200, name: Data, mode: chargeback, gl_account: "6430", entity: ACME-DE}
    - {id: CC-300, name: Research, mode: showback, entity: ACME-US}
    - {id: CC-400, name: Mobile, mode: auto, gl_account: "6440", entity: ACME-US}
    - {id: CC-900, name: Platform, shared: true}
    - {id: UNALLOCATED, name: Unallocated}
  rules:
    - id: support-to-platform
      priority: 90
      when: {ServiceName: AWS Support}
      allocate: {method: direct, cost_center: CC-900}
    - id: by-tag
      priority: 50
      when: {tags.cost-center: {exists: true}}
      allocate: {method: tag, keys: [cost-center]}
  stages:
    - {pool: CC-900, allocate: {method: proportional, basis: direct-cost}}
"""

HEADER = [
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "BillingAccountId",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "ServiceName",
    "ResourceId",
    "Tags",
]
ITEMS = [  # (service, resource, tags, base cost): costs vary by month through the month number
    ("Amazon EC2", "i-1", {"cost-center": "CC-100"}, "1234.567891"),
    ("Amazon S3", "b-1", {"cost-center": "CC-100"}, "88.004999"),
    ("Amazon EC2", "i-2", {"cost-center": "CC-200"}, "501.333333"),
    ("Amazon RDS", "db-1", {"cost-center": "CC-300"}, "77.777777"),
    ("Amazon EC2", "i-3", {"cost-center": "CC-400"}, "45.454545"),
    ("AWS Support", "", {}, "300.000001"),
    ("Amazon EC2", "i-4", {}, "19.999999"),
]
SETTINGS = FinanceSettings(payer_entity="ACME-US", markups={("ACME-US", "ACME-DE"): Decimal("0.05")})


def _focus_file(path: Path, month: int, bump: Decimal = Decimal(0)) -> Decimal:
    start, end = f"2026-{month:02d}-01T00:00:00Z", f"2026-{month + 1:02d}-01T00:00:00Z"
    total = Decimal(0)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, (service, resource, tags, base) in enumerate(ITEMS):
            cost = Decimal(base) * month + (bump if i == 0 else 0)
            total += cost
            writer.writerow(
                [
                    cost,
                    cost,
                    "USD",
                    "111122223333",
                    start,
                    end,
                    start,
                    end,
                    "Usage",
                    service,
                    resource,
                    json.dumps(tags) if tags else "",
                ]
            )
    return total


def _record(engine: sa.Engine, runner: Engine, focus: Path, month: int) -> RunInput:
    result = runner.run([focus], f"2026-{month:02d}")
    run = RunInput.from_result(result)
    ingest_run(engine, run)
    return run


def _assert_conserved(engine: sa.Engine, period: str, source_total: Decimal) -> None:
    totals = statement(engine, period, SETTINGS).totals()["USD"]
    assert totals["exact"] == source_total
    assert totals["invoice"] + totals["showback"] + totals["unallocated"] == round_total(source_total, "USD")


def test_a_quarter_with_a_restatement_and_a_dispute(books: sa.Engine, tmp_path: Path) -> None:
    (tmp_path / "quarter.yaml").write_text(POLICY)
    runner = Engine(tmp_path / "quarter.yaml")
    sources = {m: tmp_path / f"focus-2026-{m:02d}.csv" for m in (1, 2, 3)}

    january_total = _focus_file(sources[1], 1)
    _record(books, runner, sources[1], 1)
    _assert_conserved(books, "2026-01", january_total)
    january = close_period(books, "2026-01", SETTINGS).statement

    february_total = _focus_file(sources[2], 2)
    _record(books, runner, sources[2], 2)
    restated_total = _focus_file(sources[1], 1, bump=Decimal("100.005"))  # the provider restates January late
    restatement = ingest_run(books, RunInput.from_result(runner.run([sources[1]], "2026-01")))
    assert restatement.restated and restatement.adjustment_period == "2026-02"

    payments = next(inv for inv in january.invoices if inv.cost_center == "CC-100")
    dispute = submit_dispute(
        books,
        period="2026-01",
        cost_center="CC-100",
        dispute_type="usage",
        amount=Decimal("50.00"),
        description="test instance left running",
        submitted_by="payments-lead",
        settings=SETTINGS,
        now=datetime(2026, 2, 10, tzinfo=UTC),
    )
    transition(books, dispute.dispute_id, "review", actor="finops", settings=SETTINGS)
    transition(books, dispute.dispute_id, "approve", actor="controller", settings=SETTINGS, credit=Decimal("40.00"))

    assert statement(books, "2026-01", SETTINGS) == january  # the closed month is unchanged
    _assert_conserved(books, "2026-02", february_total + (restated_total - january_total))
    february = close_period(books, "2026-02", SETTINGS).statement
    adjustments = [l for l in february.lines if l.category == "adjustment"]
    assert adjustments and {l.reference for l in adjustments} == {"2026-01"}
    assert sum(l.exact_amount for l in adjustments) == restated_total - january_total
    feb_payments = next(inv for inv in february.invoices if inv.cost_center == "CC-100")
    assert feb_payments.credit_notes == (dispute.dispute_id,)
    assert [l.amount for l in feb_payments.lines if l.is_credit_note] == [Decimal("-40.00")]
    assert payments.credit_notes == ()

    march_total = _focus_file(sources[3], 3)
    _record(books, runner, sources[3], 3)
    _assert_conserved(books, "2026-03", march_total)
    march = close_period(books, "2026-03", SETTINGS).statement
    assert not any(l.is_credit_note or l.category == "adjustment" for l in march.lines)

    for period in ("2026-01", "2026-02", "2026-03"):
        (batch,) = load_journal(books, period)
        check_balanced(batch.entries)
        assert {e.entity for e in batch.entries} == {"ACME-US", "ACME-DE"}  # intercompany pair for CC-200
        manifest = json.loads(export_journal(books, period, "oracle", tmp_path / period, SETTINGS).read_text())
        assert all(t["debit"] == t["credit"] for t in manifest["totals"].values())
    assert statement(books, "2026-01", SETTINGS) == january
    assert verify_audit_chain(books).ok
