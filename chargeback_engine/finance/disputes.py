"""Disputes: a cost center contests an invoice; an approved credit lands on its next invoice.

A dispute is an immutable submission plus an append-only list of events; its status is
the status after its newest event. Allowed moves::

    submitted ──review──► under_review ──approve──► approved ──resolve──► resolved
        │                     │   └──reject───► rejected ──resolve──► resolved
        └──escalate──► escalated ◄──escalate─────┘   (escalated: approve / reject / review)

Anything else is a :class:`DisputeError` that names the status and the allowed actions.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from chargeback_engine.canonical import content_id
from chargeback_engine.costdb.connection import writing
from chargeback_engine.costdb.tables import credit_notes, dispute_events, disputes, exact, invoices
from chargeback_engine.finance import audit
from chargeback_engine.finance.finance_errors import DisputeError
from chargeback_engine.finance.money_text import minor
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.money import minor_units, quantum
from chargeback_engine.periods import Period

STATUSES = ("submitted", "under_review", "approved", "rejected", "escalated", "resolved")
OPEN_STATUSES = ("submitted", "under_review", "escalated")
TRANSITIONS: dict[str, dict[str, str]] = {
    "review": {"submitted": "under_review", "escalated": "under_review"},
    "approve": {"under_review": "approved", "escalated": "approved"},
    "reject": {"under_review": "rejected", "escalated": "rejected"},
    "escalate": {"submitted": "escalated", "under_review": "escalated", "rejected": "escalated"},
    "resolve": {"approved": "resolved", "rejected": "resolved"},
}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise DisputeError("dispute times must carry a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(moment: datetime | None) -> datetime:
    return moment or datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    seq: int
    action: str
    status: str
    actor: str
    at: str
    note: str
    assignee: str
    credit: Decimal | None


@dataclass(frozen=True)
class Dispute:
    dispute_id: str
    period: str
    cost_center: str
    cost_center_name: str  # as on the disputed invoice
    invoice_id: str
    dispute_type: str
    amount: Decimal
    currency: str
    description: str
    submitted_by: str
    submitted_at: str
    due_at: str
    events: tuple[Event, ...]

    @property
    def status(self) -> str:
        return self.events[-1].status

    @property
    def assignee(self) -> str:
        return self.events[-1].assignee

    @property
    def credit(self) -> Decimal:
        approved = [e.credit for e in self.events if e.action == "approve" and e.credit is not None]
        return approved[-1] if approved else Decimal(0)

    @property
    def comments(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.action == "comment")

    def overdue(self, now: datetime) -> bool:
        return self.status in OPEN_STATUSES and _iso(now) > self.due_at

    def document(self) -> dict[str, Any]:
        return {
            "dispute_id": self.dispute_id,
            "period": self.period,
            "cost_center": self.cost_center,
            "cost_center_name": self.cost_center_name,
            "invoice_id": self.invoice_id,
            "type": self.dispute_type,
            "status": self.status,
            "assignee": self.assignee,
            "amount": minor(self.amount, self.currency),
            "credit": minor(self.credit, self.currency),
            "currency": self.currency,
            "description": self.description,
            "submitted_by": self.submitted_by,
            "submitted_at": self.submitted_at,
            "due_at": self.due_at,
            "events": [
                {
                    "action": e.action,
                    "status": e.status,
                    "actor": e.actor,
                    "at": e.at,
                    "note": e.note,
                    "assignee": e.assignee,
                }
                for e in self.events
            ],
        }


def _minor_amount(amount: Decimal, currency: str, what: str) -> Decimal:
    places = quantum(minor_units(currency))
    if amount <= 0 or amount != amount.quantize(places):
        raise DisputeError(
            f"{what} {amount} must be positive with at most {minor_units(currency)} decimals in {currency}"
        )
    return amount


def _cost_center_name(invoice_document: str | None) -> str:
    """The name the disputed invoice gives its cost center (the policy's, at the close)."""
    return "" if invoice_document is None else str(json.loads(invoice_document).get("cost_center_name", ""))


def _load(connection: sa.Connection, dispute_id: str) -> Dispute:
    row = connection.execute(sa.select(disputes).where(disputes.c.dispute_id == dispute_id)).first()
    if row is None:
        raise DisputeError(f"no dispute {dispute_id}")
    events = connection.execute(
        sa.select(dispute_events).where(dispute_events.c.dispute_id == dispute_id).order_by(dispute_events.c.seq)
    )
    document = connection.execute(
        sa.select(invoices.c.document).where(invoices.c.invoice_id == row.invoice_id)
    ).scalar()
    return Dispute(
        row.dispute_id,
        row.period,
        row.cost_center,
        _cost_center_name(document),
        row.invoice_id,
        row.dispute_type,
        row.amount,
        row.currency,
        row.description,
        row.submitted_by,
        row.submitted_at,
        row.due_at,
        tuple(Event(e.seq, e.action, e.status, e.actor, e.at, e.note, e.assignee, e.credit) for e in events),
    )


def _append_event(
    connection: sa.Connection,
    dispute: Dispute,
    action: str,
    status: str,
    actor: str,
    at: str,
    note: str,
    assignee: str,
    credit: Decimal | None = None,
    submission: dict[str, Any] | None = None,
) -> None:
    """Append an event; its audit record covers the event row (and the submission, for the first)."""
    event = {
        "dispute_id": dispute.dispute_id,
        "seq": len(dispute.events) + 1,
        "action": action,
        "status": status,
        "actor": actor,
        "at": at,
        "note": note,
        "assignee": assignee,
        "credit": credit,
    }
    connection.execute(dispute_events.insert().values(event))
    audit.append(
        connection,
        f"dispute.{action}",
        dispute.dispute_id,
        {"seq": event["seq"], "status": status},
        rows={disputes: [submission] if submission else [], dispute_events: [event]},
    )


def submit_dispute(
    engine: sa.Engine,
    *,
    period: Period | str,
    cost_center: str,
    dispute_type: str,
    amount: Decimal,
    description: str,
    submitted_by: str,
    settings: FinanceSettings,
    currency: str | None = None,
    now: datetime | None = None,
) -> Dispute:
    """Open a dispute against the cost center's issued invoice of ``period``; auto-assigned by type."""
    period, at = str(period), _now(now)
    if not dispute_type.strip():
        raise DisputeError("a dispute needs a type (for example: allocation, usage, rate, tagging)")
    with writing(engine) as connection:
        query = sa.select(invoices.c.invoice_id, invoices.c.currency, invoices.c.document).where(
            invoices.c.period == period, invoices.c.cost_center == cost_center
        )
        if currency:
            query = query.where(invoices.c.currency == currency)
        issued = connection.execute(query).all()
        if len(issued) != 1:
            raise DisputeError(
                f"{cost_center} has {'no' if not issued else 'more than one'} invoice for {period}"
                + ("" if not issued else "; pass the currency")
            )
        invoice_id, invoice_currency, document = issued[0]
        amount = _minor_amount(Decimal(amount), invoice_currency, "the disputed amount")
        submitted_at, due_at = _iso(at), _iso(at + timedelta(days=settings.sla_days))
        identity = {
            "period": period,
            "cost_center": cost_center,
            "invoice_id": invoice_id,
            "type": dispute_type,
            "amount": amount,
            "description": description,
            "by": submitted_by,
            "at": submitted_at,
        }
        dispute_id = content_id("dsp", identity)
        if connection.execute(sa.select(disputes.c.dispute_id).where(disputes.c.dispute_id == dispute_id)).first():
            return _load(connection, dispute_id)
        submission = {
            "dispute_id": dispute_id,
            "period": period,
            "cost_center": cost_center,
            "invoice_id": invoice_id,
            "dispute_type": dispute_type,
            "amount": amount,
            "currency": invoice_currency,
            "description": description,
            "submitted_by": submitted_by,
            "submitted_at": submitted_at,
            "due_at": due_at,
        }
        connection.execute(disputes.insert().values(submission))
        empty = Dispute(
            dispute_id,
            period,
            cost_center,
            _cost_center_name(document),
            invoice_id,
            dispute_type,
            amount,
            invoice_currency,
            description,
            submitted_by,
            submitted_at,
            due_at,
            (),
        )
        _append_event(
            connection,
            empty,
            "submit",
            "submitted",
            submitted_by,
            submitted_at,
            description,
            settings.assignee_for(dispute_type),
            submission=submission,
        )
        return _load(connection, dispute_id)


def transition(
    engine: sa.Engine,
    dispute_id: str,
    action: str,
    *,
    actor: str,
    settings: FinanceSettings,
    note: str = "",
    credit: Decimal | None = None,
    now: datetime | None = None,
) -> Dispute:
    """Move a dispute along its lifecycle (review, approve, reject, escalate, resolve)."""
    if action not in TRANSITIONS:
        raise DisputeError(f"unknown dispute action {action!r} (known: {', '.join(TRANSITIONS)})")
    with writing(engine) as connection:
        dispute = _load(connection, dispute_id)
        allowed = [a for a, moves in TRANSITIONS.items() if dispute.status in moves]
        if dispute.status not in TRANSITIONS[action]:
            raise DisputeError(
                f"dispute {dispute_id} is {dispute.status}: cannot {action} it "
                f"(allowed: {', '.join(allowed) or 'nothing, it is final'})"
            )
        granted = None
        if action == "approve":
            granted = _minor_amount(
                Decimal(credit) if credit is not None else dispute.amount, dispute.currency, "the credit"
            )
            if granted > dispute.amount:
                raise DisputeError(
                    f"the credit {minor(granted, dispute.currency)} exceeds the disputed amount "
                    f"{minor(dispute.amount, dispute.currency)} {dispute.currency}"
                )
        elif credit is not None:
            raise DisputeError("only an approval carries a credit")
        assignee = settings.escalation_assignee if action == "escalate" else dispute.assignee
        _append_event(
            connection,
            dispute,
            action,
            TRANSITIONS[action][dispute.status],
            actor,
            _iso(_now(now)),
            note,
            assignee,
            granted,
        )
        return _load(connection, dispute_id)


def comment(engine: sa.Engine, dispute_id: str, *, actor: str, text: str, now: datetime | None = None) -> Dispute:
    with writing(engine) as connection:
        dispute = _load(connection, dispute_id)
        if dispute.status == "resolved":
            raise DisputeError(f"dispute {dispute_id} is resolved: it takes no more comments")
        _append_event(connection, dispute, "comment", dispute.status, actor, _iso(_now(now)), text, dispute.assignee)
        return _load(connection, dispute_id)


def get(engine: sa.Engine, dispute_id: str) -> Dispute:
    with engine.connect() as connection:
        return _load(connection, dispute_id)


def _all(connection: sa.Connection) -> Iterator[Dispute]:
    for dispute_id in connection.execute(
        sa.select(disputes.c.dispute_id).order_by(disputes.c.submitted_at, disputes.c.dispute_id)
    ).scalars():
        yield _load(connection, dispute_id)


def list_disputes(
    engine: sa.Engine, *, status: str | None = None, overdue_at: datetime | None = None, cost_center: str | None = None
) -> list[Dispute]:
    """Disputes, oldest first; ``overdue_at`` keeps only those past their SLA at that moment."""
    if status is not None and status not in STATUSES:
        raise DisputeError(f"unknown status {status!r} (known: {', '.join(STATUSES)})")
    with engine.connect() as connection:
        return [
            d
            for d in _all(connection)
            if (status is None or d.status == status)
            and (cost_center is None or d.cost_center == cost_center)
            and (overdue_at is None or d.overdue(overdue_at))
        ]


@exact
def dispute_report(engine: sa.Engine, now: datetime | None = None) -> dict[str, Any]:
    """Counts, disputed and credited amounts by status and by type, and the overdue count."""
    moment = _now(now)
    with engine.connect() as connection:
        everything = list(_all(connection))
    groups: dict[str, dict[str, dict[str, Any]]] = {"by_status": {}, "by_type": {}}
    for dispute in everything:
        for group, key in (("by_status", dispute.status), ("by_type", dispute.dispute_type)):
            bucket = groups[group].setdefault(
                key, {"count": 0, "disputed": defaultdict(Decimal), "credited": defaultdict(Decimal)}
            )
            bucket["count"] += 1
            bucket["disputed"][dispute.currency] += dispute.amount
            bucket["credited"][dispute.currency] += dispute.credit
    plain = {
        group: {
            key: {
                "count": b["count"],
                "disputed": {c: minor(v, c) for c, v in sorted(b["disputed"].items())},
                "credited": {c: minor(v, c) for c, v in sorted(b["credited"].items())},
            }
            for key, b in sorted(buckets.items())
        }
        for group, buckets in groups.items()
    }
    return {"total": len(everything), "overdue": sum(d.overdue(moment) for d in everything), **plain}


@dataclass(frozen=True)
class PendingCredit:
    dispute_id: str
    cost_center: str
    currency: str
    amount: Decimal


def pending_credits(connection: sa.Connection, before: str) -> list[PendingCredit]:
    """Approved credits of disputes on periods before ``before`` that no invoice carries yet."""
    applied = set(connection.execute(sa.select(credit_notes.c.dispute_id)).scalars())
    query = sa.select(disputes.c.dispute_id).where(disputes.c.period < before).order_by(disputes.c.dispute_id)
    credits = []
    for dispute_id in connection.execute(query).scalars():
        if dispute_id in applied:
            continue
        dispute = _load(connection, dispute_id)
        if dispute.credit > 0 and dispute.status in ("approved", "resolved"):
            credits.append(PendingCredit(dispute_id, dispute.cost_center, dispute.currency, dispute.credit))
    return credits
