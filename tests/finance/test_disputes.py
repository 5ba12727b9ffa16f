"""Disputes: lifecycle, clear errors, SLA, routing, comments, credit notes, report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from chargeback_engine.finance import (
    close_period,
    comment,
    dispute_report,
    ingest_run,
    list_disputes,
    statement,
    submit_dispute,
    transition,
)
from chargeback_engine.finance.finance_errors import DisputeError
from chargeback_engine.finance.settings import FinanceSettings
from tests.finance.builders import MONTH, run_input

SETTINGS = FinanceSettings(payer_entity="ACME-US", dispute_assignees={"usage": "cloud-ops", "rate": "procurement"})
T0 = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def invoiced(books: sa.Engine) -> sa.Engine:
    ingest_run(books, run_input("2026-01", MONTH))
    close_period(books, "2026-01", SETTINGS)
    return books


def _submit(
    engine: sa.Engine, dispute_type: str = "usage", amount: str = "10.00", cc: str = "CC-100", at: datetime = T0
):  # type: ignore[no-untyped-def]
    return submit_dispute(
        engine,
        period="2026-01",
        cost_center=cc,
        dispute_type=dispute_type,
        amount=Decimal(amount),
        description="idle instances billed",
        submitted_by="alice",
        settings=SETTINGS,
        now=at,
    )


def test_lifecycle_and_auto_assignment(invoiced: sa.Engine) -> None:
    d = _submit(invoiced)
    assert (d.status, d.assignee, d.due_at) == ("submitted", "cloud-ops", "2026-02-08T09:00:00Z")
    assert _submit(invoiced).dispute_id == d.dispute_id  # the same submission is recorded once
    d = transition(invoiced, d.dispute_id, "review", actor="bob", settings=SETTINGS, now=T0 + timedelta(hours=1))
    d = transition(invoiced, d.dispute_id, "reject", actor="bob", settings=SETTINGS, note="usage was real")
    d = transition(invoiced, d.dispute_id, "escalate", actor="alice", settings=SETTINGS)
    assert (d.status, d.assignee) == ("escalated", "finance-controller")
    d = transition(invoiced, d.dispute_id, "approve", actor="carol", settings=SETTINGS, credit=Decimal("7.50"))
    assert (d.status, d.credit) == ("approved", Decimal("7.50"))
    d = transition(invoiced, d.dispute_id, "resolve", actor="carol", settings=SETTINGS)
    assert [e.action for e in d.events] == ["submit", "review", "reject", "escalate", "approve", "resolve"]
    assert _submit(invoiced, "rate", cc="CC-200").assignee == "procurement"
    assert _submit(invoiced, "tagging", amount="1").assignee == "finops"


def test_invalid_transitions_are_clear_errors(invoiced: sa.Engine) -> None:
    d = _submit(invoiced)
    with pytest.raises(DisputeError, match=r"is submitted: cannot approve it \(allowed: review, escalate\)"):
        transition(invoiced, d.dispute_id, "approve", actor="bob", settings=SETTINGS)
    transition(invoiced, d.dispute_id, "review", actor="bob", settings=SETTINGS)
    with pytest.raises(DisputeError, match=r"the credit 10.01 exceeds the disputed amount 10.00 USD$"):
        transition(invoiced, d.dispute_id, "approve", actor="bob", settings=SETTINGS, credit=Decimal("10.01"))
    with pytest.raises(DisputeError, match="at most 2 decimals"):
        transition(invoiced, d.dispute_id, "approve", actor="bob", settings=SETTINGS, credit=Decimal("1.001"))
    transition(invoiced, d.dispute_id, "approve", actor="bob", settings=SETTINGS)
    transition(invoiced, d.dispute_id, "resolve", actor="bob", settings=SETTINGS)
    with pytest.raises(DisputeError, match="is resolved: cannot escalate it \\(allowed: nothing, it is final\\)"):
        transition(invoiced, d.dispute_id, "escalate", actor="bob", settings=SETTINGS)
    with pytest.raises(DisputeError, match="takes no more comments"):
        comment(invoiced, d.dispute_id, actor="bob", text="late")
    with pytest.raises(DisputeError, match="unknown dispute action 'delete'"):
        transition(invoiced, d.dispute_id, "delete", actor="bob", settings=SETTINGS)
    with pytest.raises(DisputeError, match="no dispute dsp-missing"):
        transition(invoiced, "dsp-missing", "review", actor="bob", settings=SETTINGS)
    with pytest.raises(DisputeError, match="CC-300 has no invoice for 2026-01"):
        _submit(invoiced, cc="CC-300")


def test_comments_and_overdue_listing(invoiced: sa.Engine) -> None:
    late = _submit(invoiced)
    on_time = _submit(invoiced, "rate", cc="CC-200", at=T0 + timedelta(days=3))
    comment(invoiced, late.dispute_id, actor="bob", text="looking into it", now=T0 + timedelta(days=1))
    assert [c.note for c in list_disputes(invoiced, status="submitted")[0].comments] == ["looking into it"]
    check = T0 + timedelta(days=6)
    assert [d.dispute_id for d in list_disputes(invoiced, overdue_at=check)] == [late.dispute_id]
    transition(invoiced, late.dispute_id, "review", actor="bob", settings=SETTINGS)
    transition(invoiced, late.dispute_id, "reject", actor="bob", settings=SETTINGS)
    assert list_disputes(invoiced, overdue_at=check) == []
    assert [d.dispute_id for d in list_disputes(invoiced, cost_center="CC-200")] == [on_time.dispute_id]


def test_approved_credit_lands_on_the_next_invoice_once(invoiced: sa.Engine) -> None:
    d = _submit(invoiced, amount="12.34")
    transition(invoiced, d.dispute_id, "review", actor="bob", settings=SETTINGS)
    transition(invoiced, d.dispute_id, "approve", actor="bob", settings=SETTINGS)
    ingest_run(invoiced, run_input("2026-02", MONTH))
    feb = close_period(invoiced, "2026-02", SETTINGS).statement
    backend = next(inv for inv in feb.invoices if inv.cost_center == "CC-100")
    (note,) = [line for line in backend.lines if line.is_credit_note]
    assert (note.reference, note.amount) == (d.dispute_id, Decimal("-12.34"))
    assert backend.credit_notes == (d.dispute_id,)
    offset = [l for l in feb.lines if l.treatment == "unallocated" and l.reference == d.dispute_id]
    assert [l.amount for l in offset] == [Decimal("12.34")]
    totals = feb.totals()["USD"]
    assert totals["invoice"] + totals["showback"] + totals["unallocated"] == totals["rounded"]
    ingest_run(invoiced, run_input("2026-03", MONTH))
    march = statement(invoiced, "2026-03", SETTINGS)
    assert not any(line.is_credit_note for line in march.lines)


def test_report_by_status_and_type(invoiced: sa.Engine) -> None:
    a = _submit(invoiced, amount="10.00")
    b = _submit(invoiced, "rate", amount="4.00", cc="CC-200")
    _submit(invoiced, "usage", amount="1.00", at=T0 + timedelta(days=4))
    transition(invoiced, a.dispute_id, "review", actor="bob", settings=SETTINGS)
    transition(invoiced, a.dispute_id, "approve", actor="bob", settings=SETTINGS, credit=Decimal("6.00"))
    transition(invoiced, b.dispute_id, "escalate", actor="bob", settings=SETTINGS)
    result = dispute_report(invoiced, now=T0 + timedelta(days=6))
    assert result["total"] == 3 and result["overdue"] == 1
    assert result["by_type"]["usage"] == {"count": 2, "disputed": {"USD": "11.00"}, "credited": {"USD": "6.00"}}
    assert result["by_status"]["escalated"]["count"] == 1
    assert result["by_status"]["approved"]["credited"] == {"USD": "6.00"}
