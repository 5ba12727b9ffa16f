"""Closing a period: invoices, statement and journal are issued in one transaction, then frozen.

Periods close in order. Closing writes the statement lines (every cent of the period),
one invoice per chargeback cost center and currency, the credit notes those invoices
carry, and the canonical journal batch, each with the audit records that cover its rows.
The close, its invoices and its batch are stamped last with the witness of all of them:
the chain's head after the close's final record. A crash before the commit leaves
nothing; a second close of a closed period changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from chargeback_engine.canonical import canonical_json
from chargeback_engine.costdb.connection import writing
from chargeback_engine.costdb.queries import head_run
from chargeback_engine.costdb.tables import credit_notes, exact, invoices, period_closes, runs, statement_lines
from chargeback_engine.finance import audit
from chargeback_engine.finance.finance_errors import ClosedPeriodError
from chargeback_engine.finance.journal import (
    JournalBatch,
    anchor_batch,
    build_batch,
    entries_for_invoice,
    load_batches,
    record_batch,
)
from chargeback_engine.finance.money_text import minor
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.finance.statements import Invoice, Statement, StatementLine, build_statement, resolve_terms
from chargeback_engine.logs import get_logger
from chargeback_engine.periods import Period

log = get_logger(__name__)


@dataclass(frozen=True)
class CloseResult:
    period: str
    committed: bool  # False when the period was already closed
    statement: Statement
    batch_id: str


@dataclass(frozen=True)
class PeriodStatus:
    period: str
    run_key: str  # the period's current run
    closed_run: str  # the run the closed statement was issued from; "" while open

    @property
    def closed(self) -> bool:
        return bool(self.closed_run)

    @property
    def restated_by(self) -> str:
        """The run that restated the closed period (its changes went to a later period), or ""."""
        return self.run_key if self.closed and self.run_key != self.closed_run else ""


def _stored_statement(connection: sa.Connection, period: str, settings: FinanceSettings) -> Statement:
    closing = connection.execute(sa.select(period_closes).where(period_closes.c.period == period)).one()
    lines = tuple(
        StatementLine(
            r.cost_center, r.treatment, r.service_name, r.category, r.reference, r.currency, r.exact_amount, r.amount
        )
        for r in connection.execute(
            sa.select(statement_lines).where(statement_lines.c.period == period).order_by(statement_lines.c.line_no)
        )
    )
    documents = connection.execute(
        sa.select(invoices.c.document)
        .where(invoices.c.period == period)
        .order_by(invoices.c.cost_center, invoices.c.currency)
    ).scalars()
    terms = resolve_terms(connection, closing.run_key, settings)
    return Statement(
        period, closing.run_key, terms, lines, tuple(Invoice.from_stored(doc) for doc in documents), closed=True
    )


@exact
def statement(engine: sa.Engine, period: Period | str, settings: FinanceSettings) -> Statement:
    """The issued statement of a closed period, or a draft of an open one (nothing is written)."""
    period = str(period)
    with engine.connect() as connection:
        if connection.execute(sa.select(period_closes.c.period).where(period_closes.c.period == period)).first():
            return _stored_statement(connection, period, settings)
        return build_statement(connection, period, settings, audit.witness(connection))


@exact
def close_period(engine: sa.Engine, period: Period | str, settings: FinanceSettings) -> CloseResult:
    """Issue the period's invoices and journal and close it; idempotent."""
    period = str(period)
    with writing(engine) as connection:
        if connection.execute(sa.select(period_closes.c.period).where(period_closes.c.period == period)).first():
            batch_id = load_batches(connection, period)[0].batch_id
            return CloseResult(period, False, _stored_statement(connection, period, settings), batch_id)
        closed = sa.select(period_closes.c.period)
        earlier = (
            connection.execute(
                sa.select(runs.c.period)
                .distinct()
                .where(runs.c.period < period, runs.c.period.not_in(closed))
                .order_by(runs.c.period)
            )
            .scalars()
            .first()
        )
        if earlier:
            raise ClosedPeriodError(f"close {earlier} before {period}: periods close in order")
        draft = build_statement(connection, period, settings, audit.witness(connection))
        batch = _issue(connection, draft, settings)
        witness = audit.witness(connection)
        issued = tuple(replace(inv, audit_head=witness.head, audit_seq=witness.seq) for inv in draft.invoices)
        if issued:
            connection.execute(invoices.insert(), [_invoice_row(inv) for inv in issued])
        batch = anchor_batch(connection, batch, witness)
        connection.execute(period_closes.insert().values({**_close_row(draft), "audit_head": witness.head}))
    log.info("finance.period.closed", period=period, invoices=len(issued), batch=batch.batch_id)
    return CloseResult(period, True, replace(draft, invoices=issued, closed=True), batch.batch_id)


def period_statuses(engine: sa.Engine) -> list[PeriodStatus]:
    with engine.connect() as connection:
        closed = dict(connection.execute(sa.select(period_closes.c.period, period_closes.c.run_key)).all())
        periods = sorted(set(connection.execute(sa.select(runs.c.period)).scalars()))
        return [PeriodStatus(p, head_run(connection, p) or "", closed.get(p, "")) for p in periods]


def _invoice_row(inv: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": inv.invoice_id,
        "period": inv.period,
        "cost_center": inv.cost_center,
        "currency": inv.currency,
        "subtotal": inv.subtotal,
        "markup": inv.markup,
        "total": inv.total,
        "audit_head": inv.audit_head,
        "document": canonical_json(inv.document(), "text"),
    }


def _close_row(stmt: Statement) -> dict[str, Any]:
    return {"period": stmt.period, "run_key": stmt.run_key, "statement_hash": stmt.content_hash}


def _issue(connection: sa.Connection, stmt: Statement, settings: FinanceSettings) -> JournalBatch:
    """Write the statement lines, credit notes and journal lines, each with the audit records covering them.

    The rows that carry a witness (invoices, the batch, the close) are recorded here but
    inserted by the caller once the chain's final head is known.
    """
    period = stmt.period
    invoice_of = {(inv.cost_center, inv.currency): inv.invoice_id for inv in stmt.invoices}
    lines = [
        {
            "period": period,
            "line_no": i,
            "cost_center": l.cost_center,
            "treatment": l.treatment,
            "service_name": l.service_name,
            "category": l.category,
            "reference": l.reference,
            "currency": l.currency,
            "exact_amount": l.exact_amount,
            "amount": l.amount,
            "invoice_id": invoice_of.get((l.cost_center, l.currency)) if l.treatment == "invoice" else None,
        }
        for i, l in enumerate(stmt.lines)
    ]
    connection.execute(statement_lines.insert(), lines)
    audit.append(
        connection,
        "statement.issued",
        period,
        {"run_key": stmt.run_key, "statement_hash": stmt.content_hash},
        rows={statement_lines: lines},
    )
    for inv in stmt.invoices:
        audit.append(
            connection,
            "invoice.issued",
            inv.invoice_id,
            {"number": inv.number, "total": minor(inv.total, inv.currency)},
            rows={invoices: [_invoice_row(inv)]},
        )
    batch = build_batch(period, "close", "", [e for inv in stmt.invoices for e in entries_for_invoice(inv, settings)])
    record_batch(connection, batch)
    notes = [
        {
            "dispute_id": l.reference,
            "invoice_id": inv.invoice_id,
            "period": period,
            "amount": -l.amount,
            "currency": inv.currency,
        }
        for inv in stmt.invoices
        for l in inv.lines
        if l.is_credit_note
    ]
    if notes:
        connection.execute(credit_notes.insert(), notes)
    audit.append(
        connection,
        "period.closed",
        period,
        {
            "journal_batch": batch.batch_id,
            "totals": {c: {k: v for k, v in t.items()} for c, t in stmt.totals().items()},
        },
        rows={period_closes: [_close_row(stmt)], credit_notes: notes},
    )
    return batch
