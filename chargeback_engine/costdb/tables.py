"""The cost database's tables (SQLAlchemy Core). Every table is append-only.

Money columns use :class:`Money`: ``numeric(38, LEDGER_SCALE)`` in PostgreSQL, canonical
decimal text in SQLite (whose NUMERIC affinity would silently turn fractions into floats).
State that changes over time (a dispute's status, a period's current run) is derived
from appended events, never updated in place, so triggers can refuse every UPDATE and
DELETE. The schema itself is created by the Alembic migrations in ``migrations/``;
``tests/finance/test_db.py`` checks that the two never drift apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal, localcontext
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE

#: Decimal digits finance computes with: sums of numeric(38, LEDGER_SCALE) amounts stay exact
#: (Decimal's default context keeps 28 digits and would silently round them).
EXACT_DIGITS = 80
P = ParamSpec("P")
R = TypeVar("R")


def exact(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` with :data:`EXACT_DIGITS` Decimal digits, so no sum of amounts rounds."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext() as ctx:
            ctx.prec = EXACT_DIGITS
            return function(*args, **kwargs)

    return wrapper


@exact
def at_ledger_scale(value: Any) -> Decimal:
    """``value`` as a Decimal with exactly the ledger's digits after the point (may round: callers check)."""
    return Decimal(value).quantize(LEDGER_QUANTUM)


class Money(TypeDecorator[Decimal]):
    """An exact amount at the ledger scale (``LEDGER_SCALE`` digits after the point)."""

    impl = sa.String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Numeric(38, LEDGER_SCALE, asdecimal=True))
        return dialect.type_descriptor(sa.String(64))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value)
        exact = at_ledger_scale(amount)
        if exact != amount:
            raise ValueError(f"{amount} has more than {LEDGER_SCALE} digits after the point")
        return exact if dialect.name == "postgresql" else format(exact, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else at_ledger_scale(value)


metadata = sa.MetaData()
_id = sa.String(80)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_key", _id, primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("policy_version", sa.String(100), nullable=False),
    sa.Column("policy_hash", sa.String(80), nullable=False),
    sa.Column("source_versions", sa.Text, nullable=False),  # canonical JSON {source_id: version}
    sa.Column("content_hash", _id, nullable=False),
    sa.Column("supersedes", _id, nullable=False),  # previous run of the period, '' for the first
    sa.Column("unallocated_cost_center", sa.String(100), nullable=False),
    sa.Column("line_count", sa.Integer, nullable=False),
    sa.UniqueConstraint("period", "supersedes", name="uq_runs_period_supersedes"),
)

run_cost_centers = sa.Table(
    "run_cost_centers",
    metadata,
    sa.Column("run_key", _id, primary_key=True),
    sa.Column("cost_center", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("gl_account", sa.String(50)),
    sa.Column("entity", sa.String(50)),
)

#: Each cost center's tag compliance in a run, as ``chargeback report tags`` computes it:
#: what ``mode: auto`` reads when the run was recorded with it.
run_tag_compliance = sa.Table(
    "run_tag_compliance",
    metadata,
    sa.Column("run_key", _id, primary_key=True),
    sa.Column("cost_center", sa.String(100), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("lines", sa.BigInteger, nullable=False),
    sa.Column("compliant_lines", sa.BigInteger, nullable=False),
    sa.Column("spend", Money, nullable=False),
    sa.Column("compliant_spend", Money, nullable=False),
)

ledger_lines = sa.Table(
    "ledger_lines",
    metadata,
    sa.Column("run_key", _id, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("record_id", sa.String(100), nullable=False),
    sa.Column("source_id", sa.String(200), nullable=False),
    sa.Column("source_row", sa.BigInteger, nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("service_name", sa.String(200)),
    sa.Column("cost_center", sa.String(100), nullable=False),
    sa.Column("from_cost_center", sa.String(100)),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("category", sa.String(20), nullable=False),
    sa.Column("rule_id", sa.String(100)),
    sa.Column("method", sa.String(50), nullable=False),
    sa.Column("decision_id", sa.String(100), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("run_key", _id, primary_key=True),
    sa.Column("decision_id", sa.String(100), primary_key=True),
    sa.Column("rule_id", sa.String(100)),
    sa.Column("rule_location", sa.String(300)),
    sa.Column("method", sa.String(50), nullable=False),
    sa.Column("shares", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

adjustments = sa.Table(
    "adjustments",
    metadata,
    sa.Column("adjustment_id", _id, primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),  # the open period that carries it
    sa.Column("corrects_period", sa.String(7), nullable=False),
    sa.Column("corrects_run", _id, nullable=False),
    sa.Column("by_run", _id, nullable=False),
    sa.Column("cost_center", sa.String(100), nullable=False),
    sa.Column("service_name", sa.String(200)),
    sa.Column("category", sa.String(20), nullable=False),  # category of the corrected amounts
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", Money, nullable=False),
)

period_closes = sa.Table(
    "period_closes",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("run_key", _id, nullable=False),
    sa.Column("statement_hash", _id, nullable=False),
    sa.Column("audit_head", _id, nullable=False),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("invoice_id", _id, primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("cost_center", sa.String(100), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("subtotal", Money, nullable=False),
    sa.Column("markup", Money, nullable=False),
    sa.Column("total", Money, nullable=False),
    sa.Column("audit_head", _id, nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # the canonical JSON invoice
    sa.UniqueConstraint("period", "cost_center", "currency", name="uq_invoices_period_cc"),
)

statement_lines = sa.Table(
    "statement_lines",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("cost_center", sa.String(100), nullable=False),
    sa.Column("treatment", sa.String(20), nullable=False),  # invoice / showback / unallocated
    sa.Column("service_name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(20), nullable=False),
    sa.Column("reference", sa.String(100), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("exact_amount", Money, nullable=False),
    sa.Column("amount", Money, nullable=False),  # rounded to the currency's minor unit
    sa.Column("invoice_id", _id),
)

credit_notes = sa.Table(
    "credit_notes",
    metadata,
    sa.Column("dispute_id", _id, primary_key=True),
    sa.Column("invoice_id", _id, nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)

journal_batches = sa.Table(
    "journal_batches",
    metadata,
    sa.Column("batch_id", _id, primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # close / correction
    sa.Column("supersedes", _id, nullable=False),  # the batch a correction replaces, '' for a close
    sa.Column("audit_head", _id, nullable=False),
    sa.UniqueConstraint("period", "supersedes", name="uq_batches_period_supersedes"),
)

journal_entries = sa.Table(
    "journal_entries",
    metadata,
    sa.Column("entry_id", _id, primary_key=True),
    sa.Column("batch_id", _id, nullable=False),
    sa.Column("entry_no", sa.Integer, nullable=False),
    sa.Column("entity", sa.String(50), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("description", sa.String(300), nullable=False),
    sa.Column("invoice_id", _id),
    sa.Column("reverses", _id),
)

journal_lines = sa.Table(
    "journal_lines",
    metadata,
    sa.Column("entry_id", _id, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("account", sa.String(50), nullable=False),
    sa.Column("cost_center", sa.String(100)),
    sa.Column("debit", Money, nullable=False),
    sa.Column("credit", Money, nullable=False),
    sa.Column("memo", sa.String(300), nullable=False),
)

disputes = sa.Table(
    "disputes",
    metadata,
    sa.Column("dispute_id", _id, primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("cost_center", sa.String(100), nullable=False),
    sa.Column("invoice_id", _id),
    sa.Column("dispute_type", sa.String(50), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("submitted_by", sa.String(100), nullable=False),
    sa.Column("submitted_at", sa.String(32), nullable=False),  # ISO 8601 UTC
    sa.Column("due_at", sa.String(32), nullable=False),
)

dispute_events = sa.Table(
    "dispute_events",
    metadata,
    sa.Column("dispute_id", _id, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # status after the event
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("assignee", sa.String(100), nullable=False),
    sa.Column("credit", Money),  # set when approved
)

audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", _id, nullable=False),
    sa.Column("hash", _id, nullable=False),
)

#: Every table above; migrations protect each one with append-only triggers.
APPEND_ONLY_TABLES = tuple(metadata.tables)
