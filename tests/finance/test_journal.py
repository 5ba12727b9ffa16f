"""The canonical journal and its ERP renderings: balance, intercompany pairs, reversal + repost."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from chargeback_engine.finance import (
    close_period,
    correct_journal,
    export_journal,
    ingest_run,
    load_journal,
    verify_audit_chain,
)
from chargeback_engine.finance.finance_errors import ClosedPeriodError, JournalError
from chargeback_engine.finance.journal import JournalEntry, JournalLine, check_balanced
from chargeback_engine.finance.settings import FinanceSettings
from tests.finance.builders import MONTH, run_input

SETTINGS = FinanceSettings(payer_entity="ACME-US", markups={("ACME-US", "ACME-DE"): Decimal("0.05")})
WD = "{urn:com.workday/bsvc}"


@pytest.fixture
def closed(books: sa.Engine) -> sa.Engine:
    ingest_run(books, run_input("2026-01", MONTH))
    close_period(books, "2026-01", SETTINGS)
    return books


def test_every_entry_balances_and_intercompany_pairs_are_written(closed: sa.Engine) -> None:
    (batch,) = load_journal(closed, "2026-01")
    check_balanced(batch.entries)
    by_entity = defaultdict(list)
    for entry in batch.entries:
        by_entity[entry.entity].append(entry)
    assert sorted(by_entity) == ["ACME-DE", "ACME-US"]
    (consumer,) = by_entity["ACME-DE"]
    assert [(l.account, l.debit, l.credit) for l in consumer.lines] == [
        ("6430", Decimal("49.58"), 0),
        ("2410", 0, Decimal("49.58")),
    ]
    payer = next(e for e in by_entity["ACME-US"] if e.invoice_id == consumer.invoice_id)
    assert [(l.account, l.debit, l.credit) for l in payer.lines] == [
        ("1410", Decimal("49.58"), 0),
        ("6990", 0, Decimal("47.22")),
        ("4910", 0, Decimal("2.36")),
    ]
    same_entity = next(e for e in by_entity["ACME-US"] if e.invoice_id != consumer.invoice_id)
    assert [(l.account, l.cost_center) for l in same_entity.lines] == [("6420", "CC-100"), ("6990", "CLOUD-POOL")]


def test_unbalanced_entries_are_refused() -> None:
    entry = JournalEntry(
        "je-x",
        "ACME-US",
        "USD",
        "broken",
        (
            JournalLine("6420", "CC-1", Decimal("1.00"), Decimal(0), "a"),
            JournalLine("6990", None, Decimal(0), Decimal("0.99"), "b"),
        ),
    )
    with pytest.raises(JournalError, match="does not balance: debit 1.00 != credit 0.99"):
        check_balanced([entry])


def test_correction_is_a_reversal_plus_a_repost(closed: sa.Engine) -> None:
    assert correct_journal(closed, "2026-01", SETTINGS) is None
    moved = FinanceSettings(payer_entity="ACME-US", markups=SETTINGS.markups, recharge_account="6995")
    correction = correct_journal(closed, "2026-01", moved)
    assert correction is not None and correction.kind == "correction"
    close, stored = load_journal(closed, "2026-01")
    assert stored == correction and stored.supersedes == close.batch_id
    reversals = [e for e in stored.entries if e.reverses]
    assert sorted(e.reverses for e in reversals) == sorted(e.entry_id for e in close.entries)
    for reversal in reversals:
        original = next(e for e in close.entries if e.entry_id == reversal.reverses)
        assert [(l.debit, l.credit) for l in reversal.lines] == [(l.credit, l.debit) for l in original.lines]
    assert {l.account for e in stored.effective for l in e.lines} >= {"6995"}
    assert "6990" not in {l.account for e in stored.effective for l in e.lines}
    check_balanced(stored.entries)
    assert correct_journal(closed, "2026-01", moved) is None
    back = correct_journal(closed, "2026-01", SETTINGS)  # moving back is another correction
    assert back is not None
    report = verify_audit_chain(closed)  # each correction is covered by the chain and anchored after its record
    assert report.ok and report.witnesses == (f"journal batch {back.batch_id} (record {report.records})",)


def _manifest(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audit_head"].startswith("sha256:")
    assert all(t["debit"] == t["credit"] for t in manifest["totals"].values())
    return manifest


def test_erp_exports(closed: sa.Engine, tmp_path: Path) -> None:
    _sap(closed, tmp_path / "sap")
    _oracle(closed, tmp_path / "oracle")
    _netsuite(closed, tmp_path / "netsuite")
    _workday(closed, tmp_path / "workday")
    _canonical_with_corrections(closed, tmp_path / "canonical")
    with pytest.raises(ClosedPeriodError, match="no posted journal"):
        export_journal(closed, "2026-02", "sap", tmp_path / "open", SETTINGS)
    with pytest.raises(ValueError, match="unknown ERP format 'quickbooks'"):
        export_journal(closed, "2026-01", "quickbooks", tmp_path / "unknown", SETTINGS)


def _sap(closed: sa.Engine, tmp_path: Path) -> None:
    export_journal(closed, "2026-01", "sap", tmp_path, SETTINGS)
    rows = list(csv.DictReader((tmp_path / "sap_journal_2026-01.csv").open()))
    assert _manifest(tmp_path)["erp"] == "sap"
    assert {r["PostingDate"] for r in rows} == {"2026-01-31"}
    by_doc = defaultdict(Decimal)
    for row in rows:
        amount = Decimal(row["AmountInTransactionCurrency"])
        assert row["DebitCreditCode"] == ("S" if amount >= 0 else "H")
        by_doc[row["OriginalReferenceDocument"]] += amount
    assert set(by_doc.values()) == {Decimal(0)}
    assert {r["CompanyCode"] for r in rows} == {"ACME-US", "ACME-DE"}


def _oracle(closed: sa.Engine, tmp_path: Path) -> None:
    export_journal(closed, "2026-01", "oracle", tmp_path, SETTINGS)
    rows = list(csv.reader((tmp_path / "GlInterface.csv").open()))
    assert all(len(r) == 52 for r in rows)
    assert {r[0] for r in rows} == {"NEW"} and {r[7] for r in rows} == {"A"} and {r[2] for r in rows} == {"2026/01/31"}
    dr = sum(Decimal(r[38] or 0) for r in rows)
    cr = sum(Decimal(r[39] or 0) for r in rows)
    assert dr == cr == Decimal("120.13") + 2 * Decimal("49.58")
    assert {r[8] for r in rows} == {"ACME-US", "ACME-DE"}  # SEGMENT1: entity


def _netsuite(closed: sa.Engine, tmp_path: Path) -> None:
    """Lines sharing an External ID form one balanced journal."""
    export_journal(closed, "2026-01", "netsuite", tmp_path, SETTINGS)
    rows = list(csv.DictReader((tmp_path / "netsuite_journal_2026-01.csv").open()))
    groups = defaultdict(list)
    for row in rows:
        groups[row["External ID"]].append(row)
    assert len(groups) == 3
    for lines in groups.values():
        assert len({(l["Subsidiary"], l["Currency"], l["Date"]) for l in lines}) == 1
        assert sum(Decimal(l["Debit"] or 0) for l in lines) == sum(Decimal(l["Credit"] or 0) for l in lines)
    assert {r["Date"] for r in rows} == {"01/31/2026"}


def _workday(closed: sa.Engine, tmp_path: Path) -> None:
    export_journal(closed, "2026-01", "workday", tmp_path, SETTINGS)
    files = sorted(tmp_path.glob("workday_*.xml"))
    assert len(files) == 3 == len(_manifest(tmp_path)["outputs"])
    for path in files:
        root = ET.parse(path).getroot()
        assert root.tag == f"{WD}Import_Accounting_Journal_Request"
        data = root.find(f"{WD}Accounting_Journal_Data")
        assert data.find(f"{WD}Accounting_Date").text == "2026-01-31"
        lines = data.findall(f"{WD}Journal_Entry_Line_Replacement_Data")
        debit = sum(Decimal(l.find(f"{WD}Debit_Amount").text) for l in lines)
        credit = sum(Decimal(l.find(f"{WD}Credit_Amount").text) for l in lines)
        assert debit == credit > 0


def _canonical_with_corrections(closed: sa.Engine, tmp_path: Path) -> None:
    correct_journal(closed, "2026-01", FinanceSettings(payer_entity="ACME-US", recharge_account="6995"))
    export_journal(closed, "2026-01", "canonical", tmp_path, SETTINGS)
    document = json.loads((tmp_path / "journal_2026-01.json").read_text())
    assert [b["kind"] for b in document["batches"]] == ["close", "correction"]
