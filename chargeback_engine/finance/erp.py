"""ERP journal exporters: the canonical journal rendered for SAP, Oracle Fusion, NetSuite and Workday.

Every exporter reads the same balanced batches (close first, then corrections) and writes
one file set plus a manifest with the audit chain head. Amounts are written with the
currency's minor-unit digits; a correction batch appears as its reversal and repost entries.

Field mapping (see docs/finance.md for the full table):

- SAP (Journal Entry API fields, one row per item): entity → CompanyCode, account → GLAccount,
  cost center → CostCenter, debit/credit → DebitCreditCode S/H with a signed AmountInTransactionCurrency.
- Oracle Fusion (FBDI ``GL_INTERFACE``, ``GlInterface.csv``, no header row): SEGMENT1 entity,
  SEGMENT2 cost center, SEGMENT3 account; REFERENCE1 batch, REFERENCE4 entry, REFERENCE10 line memo.
- NetSuite (journal CSV import): lines sharing an External ID form one journal entry.
- Workday (Import_Accounting_Journal web service): one request per entry, cost center as a worktag.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import sqlalchemy as sa

from chargeback_engine.costdb.tables import exact
from chargeback_engine.csvwriter import csv_bytes
from chargeback_engine.finance import audit
from chargeback_engine.finance.bundles import write_bundle
from chargeback_engine.finance.finance_errors import ClosedPeriodError
from chargeback_engine.finance.journal import JournalBatch, JournalEntry, check_balanced, load_batches
from chargeback_engine.finance.money_text import minor
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.periods import Period


@dataclass(frozen=True)
class ExportContext:
    period: Period
    settings: FinanceSettings

    @property
    def accounting_date(self) -> date:
        return self.period.end - timedelta(days=1)


def _entries(batches: Sequence[JournalBatch]) -> list[tuple[JournalBatch, JournalEntry]]:
    return [(batch, entry) for batch in batches for entry in batch.entries]


def _amount(value: Decimal, currency: str) -> str:
    return minor(value, currency) if value else ""


def canonical(batches: Sequence[JournalBatch], ctx: ExportContext) -> dict[str, bytes]:
    document = {
        "period": str(ctx.period),
        "batches": [
            {
                "batch_id": b.batch_id,
                "kind": b.kind,
                "supersedes": b.supersedes,
                "audit_head": b.audit_head,
                "entries": [
                    {
                        "entry_id": e.entry_id,
                        "entity": e.entity,
                        "currency": e.currency,
                        "description": e.description,
                        "invoice_id": e.invoice_id,
                        "reverses": e.reverses,
                        "lines": [
                            {
                                "account": l.account,
                                "cost_center": l.cost_center,
                                "debit": minor(l.debit, e.currency),
                                "credit": minor(l.credit, e.currency),
                                "memo": l.memo,
                            }
                            for l in e.lines
                        ],
                    }
                    for e in b.entries
                ],
            }
            for b in batches
        ],
    }
    return {f"journal_{ctx.period}.json": (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")}


SAP_HEADER = (
    "OriginalReferenceDocument",
    "CompanyCode",
    "DocumentDate",
    "PostingDate",
    "AccountingDocumentType",
    "DocumentHeaderText",
    "ReferenceDocumentItem",
    "GLAccount",
    "CostCenter",
    "DebitCreditCode",
    "AmountInTransactionCurrency",
    "TransactionCurrency",
    "DocumentItemText",
)


def sap(batches: Sequence[JournalBatch], ctx: ExportContext) -> dict[str, bytes]:
    day = ctx.accounting_date.isoformat()
    rows = []
    for _, e in _entries(batches):
        for i, l in enumerate(e.lines, start=1):
            signed = l.debit - l.credit
            rows.append(
                (
                    e.entry_id,
                    e.entity,
                    day,
                    day,
                    "SA",
                    e.description[:25],
                    i,
                    l.account,
                    l.cost_center or "",
                    "S" if signed >= 0 else "H",
                    minor(signed, e.currency),
                    e.currency,
                    l.memo[:50],
                )
            )
    return {f"sap_journal_{ctx.period}.csv": csv_bytes(SAP_HEADER, rows)}


#: GL_INTERFACE columns in FBDI template order, up to the line description (REFERENCE10).
ORACLE_COLUMNS = (
    "STATUS",
    "LEDGER_ID",
    "ACCOUNTING_DATE",
    "USER_JE_SOURCE_NAME",
    "USER_JE_CATEGORY_NAME",
    "CURRENCY_CODE",
    "DATE_CREATED",
    "ACTUAL_FLAG",
    *(f"SEGMENT{i}" for i in range(1, 31)),
    "ENTERED_DR",
    "ENTERED_CR",
    "ACCOUNTED_DR",
    "ACCOUNTED_CR",
    *(f"REFERENCE{i}" for i in range(1, 11)),
)


def oracle(batches: Sequence[JournalBatch], ctx: ExportContext) -> dict[str, bytes]:
    s, day = ctx.settings, ctx.accounting_date.isoformat().replace("-", "/")
    rows = []
    for batch, e in _entries(batches):
        for l in e.lines:
            segments = [e.entity, l.cost_center or "", l.account, *([""] * 27)]
            rows.append(
                (
                    "NEW",
                    s.ledger_id,
                    day,
                    s.journal_source,
                    s.journal_category,
                    e.currency,
                    day,
                    "A",
                    *segments,
                    _amount(l.debit, e.currency),
                    _amount(l.credit, e.currency),
                    "",
                    "",
                    batch.batch_id,
                    f"{batch.kind} {ctx.period}",
                    "",
                    e.entry_id,
                    e.description,
                    e.reverses or "",
                    "",
                    "",
                    "",
                    l.memo,
                )
            )
    return {"GlInterface.csv": csv_bytes(None, rows)}


NETSUITE_HEADER = (
    "External ID",
    "Date",
    "Subsidiary",
    "Currency",
    "Memo",
    "Account",
    "Debit",
    "Credit",
    "Line Memo",
    "Department",
)


def netsuite(batches: Sequence[JournalBatch], ctx: ExportContext) -> dict[str, bytes]:
    day = ctx.accounting_date.strftime("%m/%d/%Y")
    rows = [
        (
            e.entry_id,
            day,
            e.entity,
            e.currency,
            e.description,
            l.account,
            _amount(l.debit, e.currency),
            _amount(l.credit, e.currency),
            l.memo,
            l.cost_center or "",
        )
        for _, e in _entries(batches)
        for l in e.lines
    ]
    return {f"netsuite_journal_{ctx.period}.csv": csv_bytes(NETSUITE_HEADER, rows)}


def _wd_ref(element: str, id_type: str, value: str) -> str:
    return f'<wd:{element}><wd:ID wd:type="{id_type}">{escape(value)}</wd:ID></wd:{element}>'


def workday(batches: Sequence[JournalBatch], ctx: ExportContext) -> dict[str, bytes]:
    s, day = ctx.settings, ctx.accounting_date.isoformat()
    files = {}
    for _, e in _entries(batches):
        lines = "".join(
            "<wd:Journal_Entry_Line_Replacement_Data>"
            f"<wd:Line_Order>{i}</wd:Line_Order>"
            + _wd_ref("Line_Company_Reference", "Company_Reference_ID", e.entity)
            + _wd_ref("Ledger_Account_Reference", "Ledger_Account_ID", l.account)
            + f"<wd:Debit_Amount>{minor(l.debit, e.currency)}</wd:Debit_Amount>"
            f"<wd:Credit_Amount>{minor(l.credit, e.currency)}</wd:Credit_Amount>"
            + _wd_ref("Currency_Reference", "Currency_ID", e.currency)
            + f"<wd:Memo>{escape(l.memo)}</wd:Memo>"
            + (_wd_ref("Worktags_Reference", "Cost_Center_Reference_ID", l.cost_center) if l.cost_center else "")
            + "</wd:Journal_Entry_Line_Replacement_Data>"
            for i, l in enumerate(e.lines, start=1)
        )
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<wd:Import_Accounting_Journal_Request xmlns:wd="urn:com.workday/bsvc" wd:version="v42.0">'
            "<wd:Business_Process_Parameters><wd:Auto_Complete>false</wd:Auto_Complete>"
            "</wd:Business_Process_Parameters><wd:Accounting_Journal_Data>"
            f"<wd:Accounting_Journal_ID>{escape(e.entry_id)}</wd:Accounting_Journal_ID>"
            "<wd:Submit>true</wd:Submit>"
            + _wd_ref("Company_Reference", "Company_Reference_ID", e.entity)
            + _wd_ref("Currency_Reference", "Currency_ID", e.currency)
            + _wd_ref("Ledger_Type_Reference", "Ledger_Type_ID", "Actuals")
            + f"<wd:Accounting_Date>{day}</wd:Accounting_Date>"
            + _wd_ref("Journal_Source_Reference", "Journal_Source_ID", s.journal_source)
            + f"<wd:Journal_Entry_Memo>{escape(e.description)}</wd:Journal_Entry_Memo>"
            + lines
            + "</wd:Accounting_Journal_Data></wd:Import_Accounting_Journal_Request>\n"
        )
        files[f"workday_{e.entry_id}.xml"] = xml.encode("utf-8")
    return files


Exporter = Callable[[Sequence[JournalBatch], ExportContext], dict[str, bytes]]
ERP_EXPORTERS: dict[str, Exporter] = {
    "canonical": canonical,
    "sap": sap,
    "oracle": oracle,
    "netsuite": netsuite,
    "workday": workday,
}


@exact
def export_journal(engine: sa.Engine, period: Period | str, erp: str, out_dir: Path, settings: FinanceSettings) -> Path:
    """Write the period's posted journal in ``erp``'s format, then a manifest with the audit witness."""
    if erp not in ERP_EXPORTERS:
        raise ValueError(f"unknown ERP format {erp!r} (known: {', '.join(ERP_EXPORTERS)})")
    period = Period.parse(str(period))
    with engine.connect() as connection:
        batches = load_batches(connection, str(period))
        witness = audit.witness(connection)
    if not batches:
        raise ClosedPeriodError(f"period {period} has no posted journal; close it first")
    for batch in batches:
        check_balanced(batch.entries)
    files = ERP_EXPORTERS[erp](batches, ExportContext(period, settings))
    totals: dict[str, dict[str, Decimal]] = {}
    for _, e in _entries(batches):
        bucket = totals.setdefault(e.currency, {"debit": Decimal(0), "credit": Decimal(0)})
        bucket["debit"] += e.debit
        bucket["credit"] += e.credit
    manifest = {
        "kind": "journal",
        "erp": erp,
        "period": str(period),
        **witness.document(),
        "batches": [{"batch_id": b.batch_id, "kind": b.kind, "entries": len(b.entries)} for b in batches],
        "totals": {c: {k: minor(v, c) for k, v in t.items()} for c, t in sorted(totals.items())},
    }
    return write_bundle(Path(out_dir), files, manifest)
