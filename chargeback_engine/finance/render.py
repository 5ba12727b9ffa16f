"""Invoices as documents: canonical JSON, CSV and printable HTML, written with a manifest."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import sqlalchemy as sa

from chargeback_engine.finance import audit
from chargeback_engine.finance.errors import ClosedPeriodError
from chargeback_engine.finance.files import csv_bytes, write_bundle
from chargeback_engine.finance.journal import issued_invoices
from chargeback_engine.finance.canonical import minor
from chargeback_engine.finance.statements import Invoice
from chargeback_engine.finance.tables import period_closes

INVOICE_FORMATS = ("json", "csv", "html")
CSV_HEADER = ("invoice_id", "number", "period", "cost_center", "currency", "service_name", "category", "reference",
              "amount")


def invoice_json(invoice: Invoice) -> bytes:
    return (json.dumps(invoice.document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def invoice_csv(invoice: Invoice) -> bytes:
    head = (invoice.invoice_id, invoice.number, invoice.period, invoice.cost_center, invoice.currency)
    c = invoice.currency
    rows = [(*head, line.service_name, line.category, line.reference, minor(line.amount, c)) for line in invoice.lines]
    rows += [(*head, "", "subtotal", "", minor(invoice.subtotal, c)),
             (*head, "", "markup", f"rate {invoice.markup_rate}", minor(invoice.markup, c)),
             (*head, "", "total", "", minor(invoice.total, c))]
    return csv_bytes(CSV_HEADER, rows, amount_columns=[8])


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
        f"<td class=\"amount\">{minor(line.amount, c)}</td></tr>" for line in invoice.lines)
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
<p class="meta">Invoice id {e(invoice.invoice_id)} · run {e(invoice.run_key)} · audit chain head {e(invoice.audit_head)}</p>
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
        head = audit.head(connection)
        closed = connection.execute(sa.select(period_closes.c.period).where(period_closes.c.period == period)).first()
    if not closed:
        raise ClosedPeriodError(f"period {period} is not closed: invoices are issued when it closes")
    files = {f"{_file_stem(inv)}.{fmt}": _RENDERERS[fmt](inv) for inv in issued for fmt in formats}
    manifest = {"kind": "invoices", "period": period, "audit_head": head,
                "invoices": [{"invoice_id": inv.invoice_id, "number": inv.number, "total": minor(inv.total, inv.currency),
                              "currency": inv.currency, "audit_head": inv.audit_head} for inv in issued]}
    return write_bundle(Path(out_dir), files, manifest)
