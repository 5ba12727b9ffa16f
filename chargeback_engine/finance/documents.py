"""Finance documents: invoices (JSON, CSV, printable HTML) and statements for showback, with manifests."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from chargeback_engine.costdb.tables import exact, period_closes
from chargeback_engine.csvwriter import csv_bytes
from chargeback_engine.finance import audit
from chargeback_engine.finance.bundles import write_bundle
from chargeback_engine.finance.finance_errors import ClosedPeriodError
from chargeback_engine.finance.journal import issued_invoices
from chargeback_engine.finance.money_text import minor, money_text
from chargeback_engine.finance.period_close import statement
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.finance.statements import Invoice

INVOICE_FORMATS = ("json", "csv", "html")
CSV_HEADER = (
    "invoice_id",
    "number",
    "period",
    "cost_center",
    "currency",
    "service_name",
    "category",
    "reference",
    "amount",
)


def invoice_json(invoice: Invoice) -> bytes:
    return (json.dumps(invoice.document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def invoice_csv(invoice: Invoice) -> bytes:
    head = (invoice.invoice_id, invoice.number, invoice.period, invoice.cost_center, invoice.currency)
    c = invoice.currency
    rows = [(*head, line.service_name, line.category, line.reference, minor(line.amount, c)) for line in invoice.lines]
    rows += [
        (*head, "", "subtotal", "", minor(invoice.subtotal, c)),
        (*head, "", "markup", f"rate {invoice.markup_rate}", minor(invoice.markup, c)),
        (*head, "", "total", "", minor(invoice.total, c)),
    ]
    return csv_bytes(CSV_HEADER, rows)


_STYLE = """
body { font: 11pt/1.4 system-ui, sans-serif; margin: 2cm; color: #111; }
h1 { font-size: 18pt; margin: 0 0 .2em; }
table { border-collapse: collapse; width: 100%; margin-top: 1em; }
th, td { border-bottom: 1px solid #ccc; padding: .3em .5em; text-align: left; }
td.amount, th.amount { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: bold; border-bottom: none; }
.meta { color: #555; font-size: 9pt; word-break: break-all; }
@page { size: A4; margin: 1.5cm; }
@media print { body { margin: 0; } }
"""


def invoice_html(invoice: Invoice) -> bytes:
    e, c = html.escape, invoice.currency
    rows = "\n".join(
        f"<tr><td>{e(line.service_name)}</td><td>{e(line.category)}</td><td>{e(line.reference)}</td>"
        f'<td class="amount">{minor(line.amount, c)}</td></tr>'
        for line in invoice.lines
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invoice {e(invoice.number)}</title><style>{_STYLE}</style></head>
<body>
<h1>Cloud recharge invoice {e(invoice.number)}</h1>
<p>Cost center <strong>{e(invoice.cost_center)}</strong> ({e(invoice.cost_center_name)}),
entity {e(invoice.entity or "-")}; billed by {e(invoice.payer_entity or "-")}; period {e(invoice.period)}; currency {e(c)}.</p>
<table>
<thead><tr><th>Service</th><th>Category</th><th>Reference</th><th class="amount">Amount ({e(c)})</th></tr></thead>
<tbody>
{rows}
</tbody>
<tfoot>
<tr><td colspan="3">Subtotal</td><td class="amount">{minor(invoice.subtotal, c)}</td></tr>
<tr><td colspan="3">Markup ({e(str(invoice.markup_rate))})</td><td class="amount">{minor(invoice.markup, c)}</td></tr>
<tr><td colspan="3">Total</td><td class="amount">{minor(invoice.total, c)}</td></tr>
</tfoot>
</table>
<p class="meta">Invoice id {e(invoice.invoice_id)} · run {e(invoice.run_key)} · audit chain head {e(invoice.audit_head)} (record {invoice.audit_seq})</p>
</body></html>
"""
    return page.encode("utf-8")


def _file_stem(invoice: Invoice) -> str:
    """``PERIOD_COSTCENTER_CURRENCY``; a cost center id unsafe in a file name is replaced and disambiguated."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", invoice.cost_center)
    suffix = "" if safe == invoice.cost_center else f"_{invoice.invoice_id}"
    return f"{invoice.period}_{safe}_{invoice.currency}{suffix}"


_RENDERERS = {"json": invoice_json, "csv": invoice_csv, "html": invoice_html}


def export_invoices(engine: sa.Engine, period: str, out_dir: Path, formats: tuple[str, ...] = INVOICE_FORMATS) -> Path:
    """Write every issued invoice of a closed period in ``formats``, then the manifest."""
    unknown = sorted(set(formats) - set(_RENDERERS))
    if unknown:
        raise ValueError(f"unknown invoice format {unknown[0]!r} (known: {', '.join(INVOICE_FORMATS)})")
    with engine.connect() as connection:
        issued = issued_invoices(connection, period)
        witness = audit.witness(connection)
        closed = connection.execute(sa.select(period_closes.c.period).where(period_closes.c.period == period)).first()
    if not closed:
        raise ClosedPeriodError(f"period {period} is not closed: invoices are issued when it closes")
    files = {f"{_file_stem(inv)}.{fmt}": _RENDERERS[fmt](inv) for inv in issued for fmt in formats}
    manifest = {
        "kind": "invoices",
        "period": period,
        **witness.document(),
        "invoices": [
            {
                "invoice_id": inv.invoice_id,
                "number": inv.number,
                "total": minor(inv.total, inv.currency),
                "currency": inv.currency,
                "audit_head": inv.audit_head,
                "audit_seq": inv.audit_seq,
            }
            for inv in issued
        ],
    }
    return write_bundle(Path(out_dir), files, manifest)


STATEMENT_HEADER = (
    "period",
    "cost_center",
    "treatment",
    "mode",
    "compliance",
    "service_name",
    "category",
    "reference",
    "currency",
    "exact_amount",
    "amount",
)


@exact
def export_statement(engine: sa.Engine, period: str, out_dir: Path, settings: FinanceSettings) -> Path:
    """The period's statement as reports: every line (CSV) and the total per cost center (JSON).

    This is what showback cost centers receive; for an open period it is a draft.
    """
    stmt = statement(engine, period, settings)
    with engine.connect() as connection:
        witness = audit.witness(connection)
    rows = [
        (
            period,
            l.cost_center,
            l.treatment,
            stmt.terms[l.cost_center].mode if l.cost_center in stmt.terms else "",
            money_text(stmt.terms[l.cost_center].compliance) if l.cost_center in stmt.terms else "",
            l.service_name,
            l.category,
            l.reference,
            l.currency,
            money_text(l.exact_amount),
            minor(l.amount, l.currency),
        )
        for l in stmt.lines
    ]
    per_center: dict[tuple[str, str, str], Decimal] = {}
    for l in stmt.lines:
        key = (l.cost_center, l.treatment, l.currency)
        per_center[key] = per_center.get(key, Decimal(0)) + l.amount
    summary = {
        "period": period,
        "closed": stmt.closed,
        "run_key": stmt.run_key,
        "cost_centers": [
            {"cost_center": cc, "treatment": treatment, "currency": currency, "amount": minor(amount, currency)}
            for (cc, treatment, currency), amount in sorted(per_center.items())
        ],
        "totals": {
            c: {k: money_text(v) if k == "exact" else minor(v, c) for k, v in t.items()}
            for c, t in sorted(stmt.totals().items())
        },
    }
    files = {
        f"statement_{period}.csv": csv_bytes(STATEMENT_HEADER, rows),
        f"statement_{period}.json": (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    }
    return write_bundle(
        Path(out_dir), files, {"kind": "statement", "period": period, "closed": stmt.closed, **witness.document()}
    )
