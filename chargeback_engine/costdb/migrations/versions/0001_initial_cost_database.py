"""initial cost database

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargeback_engine.costdb.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adjustments",
        sa.Column("adjustment_id", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("corrects_period", sa.String(length=7), nullable=False),
        sa.Column("corrects_run", sa.String(length=80), nullable=False),
        sa.Column("by_run", sa.String(length=80), nullable=False),
        sa.Column("cost_center", sa.String(length=100), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.PrimaryKeyConstraint("adjustment_id"),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=80), nullable=False),
        sa.Column("hash", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "credit_notes",
        sa.Column("dispute_id", sa.String(length=80), nullable=False),
        sa.Column("invoice_id", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("dispute_id"),
    )
    op.create_table(
        "decisions",
        sa.Column("run_key", sa.String(length=80), nullable=False),
        sa.Column("decision_id", sa.String(length=100), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=True),
        sa.Column("rule_location", sa.String(length=300), nullable=True),
        sa.Column("method", sa.String(length=50), nullable=False),
        sa.Column("shares", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_key", "decision_id"),
    )
    op.create_table(
        "dispute_events",
        sa.Column("dispute_id", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("assignee", sa.String(length=100), nullable=False),
        sa.Column("credit", chargeback_engine.costdb.tables.Money(length=64), nullable=True),
        sa.PrimaryKeyConstraint("dispute_id", "seq"),
    )
    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("cost_center", sa.String(length=100), nullable=False),
        sa.Column("invoice_id", sa.String(length=80), nullable=True),
        sa.Column("dispute_type", sa.String(length=50), nullable=False),
        sa.Column("amount", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("submitted_by", sa.String(length=100), nullable=False),
        sa.Column("submitted_at", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("dispute_id"),
    )
    op.create_table(
        "invoices",
        sa.Column("invoice_id", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("cost_center", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("markup", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("total", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("audit_head", sa.String(length=80), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id"),
        sa.UniqueConstraint("period", "cost_center", "currency", name="uq_invoices_period_cc"),
    )
    op.create_table(
        "journal_batches",
        sa.Column("batch_id", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("supersedes", sa.String(length=80), nullable=False),
        sa.Column("audit_head", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
        sa.UniqueConstraint("period", "supersedes", name="uq_batches_period_supersedes"),
    )
    op.create_table(
        "journal_entries",
        sa.Column("entry_id", sa.String(length=80), nullable=False),
        sa.Column("batch_id", sa.String(length=80), nullable=False),
        sa.Column("entry_no", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("invoice_id", sa.String(length=80), nullable=True),
        sa.Column("reverses", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_table(
        "journal_lines",
        sa.Column("entry_id", sa.String(length=80), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=50), nullable=False),
        sa.Column("cost_center", sa.String(length=100), nullable=True),
        sa.Column("debit", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("credit", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("memo", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "line_no"),
    )
    op.create_table(
        "ledger_lines",
        sa.Column("run_key", sa.String(length=80), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("source_row", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=True),
        sa.Column("cost_center", sa.String(length=100), nullable=False),
        sa.Column("from_cost_center", sa.String(length=100), nullable=True),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=True),
        sa.Column("method", sa.String(length=50), nullable=False),
        sa.Column("decision_id", sa.String(length=100), nullable=False),
        sa.Column("amount", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("run_key", "line_no"),
    )
    op.create_table(
        "period_closes",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("run_key", sa.String(length=80), nullable=False),
        sa.Column("statement_hash", sa.String(length=80), nullable=False),
        sa.Column("audit_head", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("period"),
    )
    op.create_table(
        "run_cost_centers",
        sa.Column("run_key", sa.String(length=80), nullable=False),
        sa.Column("cost_center", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("gl_account", sa.String(length=50), nullable=True),
        sa.Column("entity", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("run_key", "cost_center"),
    )
    op.create_table(
        "runs",
        sa.Column("run_key", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("policy_hash", sa.String(length=80), nullable=False),
        sa.Column("source_versions", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column("supersedes", sa.String(length=80), nullable=False),
        sa.Column("unallocated_cost_center", sa.String(length=100), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_key"),
        sa.UniqueConstraint("period", "supersedes", name="uq_runs_period_supersedes"),
    )
    op.create_table(
        "statement_lines",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("cost_center", sa.String(length=100), nullable=False),
        sa.Column("treatment", sa.String(length=20), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("exact_amount", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("amount", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("period", "line_no"),
    )


def downgrade() -> None:
    op.drop_table("statement_lines")
    op.drop_table("runs")
    op.drop_table("run_cost_centers")
    op.drop_table("period_closes")
    op.drop_table("ledger_lines")
    op.drop_table("journal_lines")
    op.drop_table("journal_entries")
    op.drop_table("journal_batches")
    op.drop_table("invoices")
    op.drop_table("disputes")
    op.drop_table("dispute_events")
    op.drop_table("decisions")
    op.drop_table("credit_notes")
    op.drop_table("audit_records")
    op.drop_table("adjustments")
