"""The canonical journal: batch → entries → lines, balanced per entry and currency.

Each chargeback invoice becomes one entry that debits the consumer's expense account on its
cost center and credits the cloud cost pool's recharge account (and the markup account for
any markup). When the consumer's legal entity differs from the payer's, the invoice becomes
an intercompany pair instead: the consumer books expense against an intercompany payable,
the payer books the intercompany receivable against recharge and markup. A posted batch is
never edited: a correction is a new batch that reverses every effective entry and reposts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from chargeback_engine.canonical import canonical_json, content_id
from chargeback_engine.costdb.connection import writing
from chargeback_engine.costdb.tables import exact, invoices, journal_batches, journal_entries, journal_lines
from chargeback_engine.finance import audit
from chargeback_engine.finance.finance_errors import ClosedPeriodError, JournalError
from chargeback_engine.finance.money_text import minor
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.finance.statements import Invoice
from chargeback_engine.money import LEDGER_QUANTUM

ZERO = Decimal(0).quantize(LEDGER_QUANTUM)


@dataclass(frozen=True)
class JournalLine:
    account: str
    cost_center: str | None
    debit: Decimal
    credit: Decimal
    memo: str

    @classmethod
    def signed(cls, account: str, cost_center: str | None, amount: Decimal, memo: str) -> JournalLine:
        """A debit for a positive amount, a credit for a negative one (credit notes flip sides)."""
        amount = amount.quantize(LEDGER_QUANTUM)  # one scale, so stored and rebuilt lines compare and hash alike
        return cls(account, cost_center, max(amount, ZERO), max(-amount, ZERO), memo)

    def reversed(self) -> JournalLine:
        return replace(self, debit=self.credit, credit=self.debit, memo=f"Reversal: {self.memo}")


@dataclass(frozen=True)
class JournalEntry:
    entry_id: str
    entity: str
    currency: str
    description: str
    lines: tuple[JournalLine, ...]
    invoice_id: str | None = None
    reverses: str | None = None

    @property
    def debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)


@dataclass(frozen=True)
class JournalBatch:
    batch_id: str
    period: str
    kind: str  # close or correction
    supersedes: str  # the batch a correction replaces; "" for the close batch
    entries: tuple[JournalEntry, ...]
    audit_head: str = ""  # the witness, set when the batch is anchored after its records

    @property
    def effective(self) -> tuple[JournalEntry, ...]:
        """The entries that stand after this batch: all but its reversals."""
        return tuple(e for e in self.entries if e.reverses is None)


def check_balanced(entries: Sequence[JournalEntry]) -> None:
    """Σ debit = Σ credit for every entry (each entry has one currency)."""
    for entry in entries:
        if entry.debit != entry.credit:
            raise JournalError(
                f"journal entry {entry.entry_id} ({entry.entity}, {entry.currency}) does not balance: "
                f"debit {minor(entry.debit, entry.currency)} != "
                f"credit {minor(entry.credit, entry.currency)}"
            )


def _entry(
    parent: str, invoice: Invoice, role: str, entity: str, description: str, lines: list[JournalLine]
) -> JournalEntry | None:
    kept = tuple(line for line in lines if line.debit or line.credit)
    if not kept:
        return None
    identity = {
        "parent": parent,
        "invoice": invoice.invoice_id,
        "role": role,
        "entity": entity,
        "lines": [[l.account, l.cost_center, l.debit, l.credit, l.memo] for l in kept],
    }
    return JournalEntry(content_id("je", identity), entity, invoice.currency, description, kept, invoice.invoice_id)


def entries_for_invoice(invoice: Invoice, settings: FinanceSettings, parent: str = "") -> list[JournalEntry]:
    """The entries that book one invoice; an intercompany pair when the entities differ."""
    payer = settings.payer_entity or invoice.entity or "default"
    consumer = invoice.entity or payer
    cc, number = invoice.cost_center, invoice.number
    expense = JournalLine.signed(
        invoice.gl_account or settings.default_expense_account, cc, invoice.total, f"Cloud recharge {number}"
    )
    recharge = [
        JournalLine.signed(
            settings.recharge_account, settings.pool_cost_center, -invoice.subtotal, f"Cloud cost recharged {number}"
        ),
        JournalLine.signed(settings.markup_account, settings.pool_cost_center, -invoice.markup, f"Markup {number}"),
    ]
    if consumer == payer:
        entries = [_entry(parent, invoice, "recharge", payer, f"Cloud recharge {number}", [expense, *recharge])]
    else:
        entries = [
            _entry(
                parent,
                invoice,
                "intercompany-consumer",
                consumer,
                f"Intercompany cloud recharge {number} from {payer}",
                [
                    expense,
                    JournalLine.signed(
                        settings.intercompany_payable, None, -invoice.total, f"Due to {payer} for {number}"
                    ),
                ],
            ),
            _entry(
                parent,
                invoice,
                "intercompany-payer",
                payer,
                f"Intercompany cloud recharge {number} to {consumer}",
                [
                    JournalLine.signed(
                        settings.intercompany_receivable, None, invoice.total, f"Due from {consumer} for {number}"
                    ),
                    *recharge,
                ],
            ),
        ]
    return [entry for entry in entries if entry]


def build_batch(period: str, kind: str, supersedes: str, entries: Sequence[JournalEntry]) -> JournalBatch:
    check_balanced(entries)
    batch_id = content_id(
        "jb", {"period": period, "kind": kind, "supersedes": supersedes, "entries": [e.entry_id for e in entries]}
    )
    return JournalBatch(batch_id, period, kind, supersedes, tuple(entries))


def _batch_row(batch: JournalBatch) -> dict[str, str]:
    return {
        "batch_id": batch.batch_id,
        "period": batch.period,
        "kind": batch.kind,
        "supersedes": batch.supersedes,
        "audit_head": batch.audit_head,
    }


def record_batch(connection: sa.Connection, batch: JournalBatch) -> None:
    """Write the batch's entries and lines and the audit record that covers them and the batch row."""
    entries = [
        {
            "entry_id": e.entry_id,
            "batch_id": batch.batch_id,
            "entry_no": i,
            "entity": e.entity,
            "currency": e.currency,
            "description": e.description,
            "invoice_id": e.invoice_id,
            "reverses": e.reverses,
        }
        for i, e in enumerate(batch.entries)
    ]
    lines = [
        {
            "entry_id": e.entry_id,
            "line_no": j,
            "account": l.account,
            "cost_center": l.cost_center,
            "debit": l.debit,
            "credit": l.credit,
            "memo": l.memo,
        }
        for e in batch.entries
        for j, l in enumerate(e.lines)
    ]
    if entries:
        connection.execute(journal_entries.insert(), entries)
        connection.execute(journal_lines.insert(), lines)
    audit.append(
        connection,
        f"journal.{batch.kind}",
        batch.batch_id,
        {"period": batch.period},
        rows={journal_batches: [_batch_row(batch)], journal_entries: entries, journal_lines: lines},
    )


def anchor_batch(connection: sa.Connection, batch: JournalBatch, witness: audit.Witness) -> JournalBatch:
    """Insert the batch row, stamped with the witness of its records; the batch is posted from here on."""
    anchored = replace(batch, audit_head=witness.head)
    connection.execute(journal_batches.insert().values(_batch_row(anchored)))
    return anchored


def load_batches(connection: sa.Connection, period: str) -> list[JournalBatch]:
    """The period's batches in posting order (close first, then each correction)."""
    rows = {
        row.supersedes: row
        for row in connection.execute(sa.select(journal_batches).where(journal_batches.c.period == period))
    }
    lines: dict[str, list[JournalLine]] = defaultdict(list)
    entries_by_batch: dict[str, list[sa.Row[Any]]] = defaultdict(list)
    query = (
        sa.select(journal_entries)
        .join(journal_batches, journal_batches.c.batch_id == journal_entries.c.batch_id)
        .where(journal_batches.c.period == period)
        .order_by(journal_entries.c.entry_no)
    )
    for entry in connection.execute(query):
        entries_by_batch[entry.batch_id].append(entry)
    line_query = (
        sa.select(journal_lines)
        .join(journal_entries, journal_entries.c.entry_id == journal_lines.c.entry_id)
        .join(journal_batches, journal_batches.c.batch_id == journal_entries.c.batch_id)
        .where(journal_batches.c.period == period)
        .order_by(journal_lines.c.line_no)
    )
    for line in connection.execute(line_query):
        lines[line.entry_id].append(JournalLine(line.account, line.cost_center, line.debit, line.credit, line.memo))
    batches, parent = [], ""
    while parent in rows:
        row = rows[parent]
        entries = tuple(
            JournalEntry(
                e.entry_id, e.entity, e.currency, e.description, tuple(lines[e.entry_id]), e.invoice_id, e.reverses
            )
            for e in entries_by_batch[row.batch_id]
        )
        batches.append(JournalBatch(row.batch_id, row.period, row.kind, row.supersedes, entries, row.audit_head))
        parent = row.batch_id
    return batches


def issued_invoices(connection: sa.Connection, period: str) -> list[Invoice]:
    query = (
        sa.select(invoices.c.document)
        .where(invoices.c.period == period)
        .order_by(invoices.c.cost_center, invoices.c.currency)
    )
    return [Invoice.from_stored(doc) for doc in connection.execute(query).scalars()]


def _bookings(entries: Sequence[JournalEntry]) -> list[str]:
    """What entries book, without their ids: equal bookings need no correction."""
    return sorted(
        canonical_json(
            [
                e.entity,
                e.currency,
                e.invoice_id,
                [[l.account, l.cost_center, l.debit, l.credit, l.memo] for l in e.lines],
            ],
            "text",
        )
        for e in entries
    )


@exact
def correct_journal(engine: sa.Engine, period: str, settings: FinanceSettings) -> JournalBatch | None:
    """Re-derive the period's journal with today's settings; if it differs, reverse and repost.

    Returns the correction batch, or ``None`` when the posted journal already matches.
    """
    with writing(engine) as connection:
        batches = load_batches(connection, period)
        if not batches:
            raise ClosedPeriodError(f"period {period} has no posted journal; close it first")
        current = batches[-1]
        wanted = [
            e
            for inv in issued_invoices(connection, period)
            for e in entries_for_invoice(inv, settings, parent=current.batch_id)
        ]
        if _bookings(wanted) == _bookings(current.effective):
            return None
        reversals = [
            JournalEntry(
                content_id("je", {"reverses": e.entry_id}),
                e.entity,
                e.currency,
                f"Reversal of {e.description}",
                tuple(l.reversed() for l in e.lines),
                e.invoice_id,
                reverses=e.entry_id,
            )
            for e in current.effective
        ]
        batch = build_batch(period, "correction", current.batch_id, [*reversals, *wanted])
        record_batch(connection, batch)
        return anchor_batch(connection, batch, audit.witness(connection))


def load_journal(engine: sa.Engine, period: str) -> list[JournalBatch]:
    with engine.connect() as connection:
        return load_batches(connection, period)
