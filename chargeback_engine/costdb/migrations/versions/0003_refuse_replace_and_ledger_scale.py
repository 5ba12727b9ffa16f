"""append-only against INSERT OR REPLACE; money columns at the ledger scale

SQLite's ``INSERT OR REPLACE`` (and ``REPLACE``) deletes the row in the way without firing
DELETE triggers, so a trigger on INSERT now refuses any row whose primary key or unique
key already exists. PostgreSQL needs no such trigger: ``INSERT … ON CONFLICT DO UPDATE``
fires the UPDATE trigger of 0002. PostgreSQL money columns are brought to
``numeric(38, LEDGER_SCALE)``, whatever the constant is when this runs.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeback_engine.money import LEDGER_SCALE

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Each table's primary key and unique keys: the rows a REPLACE would silently delete.
KEYS = {
    "runs": (("run_key",), ("period", "supersedes")),
    "run_cost_centers": (("run_key", "cost_center"),),
    "ledger_lines": (("run_key", "line_no"),),
    "decisions": (("run_key", "decision_id"),),
    "adjustments": (("adjustment_id",),),
    "period_closes": (("period",),),
    "invoices": (("invoice_id",), ("period", "cost_center", "currency")),
    "statement_lines": (("period", "line_no"),),
    "credit_notes": (("dispute_id",),),
    "journal_batches": (("batch_id",), ("period", "supersedes")),
    "journal_entries": (("entry_id",),),
    "journal_lines": (("entry_id", "line_no"),),
    "disputes": (("dispute_id",),),
    "dispute_events": (("dispute_id", "seq"),),
    "audit_records": (("seq",),),
}

MONEY_COLUMNS = {
    "ledger_lines": ("amount",),
    "adjustments": ("amount",),
    "invoices": ("subtotal", "markup", "total"),
    "statement_lines": ("exact_amount", "amount"),
    "credit_notes": ("amount",),
    "journal_lines": ("debit", "credit"),
    "disputes": ("amount",),
    "dispute_events": ("credit",),
}


def _sqlite_refuse_replace(table: str, keys: tuple[tuple[str, ...], ...]) -> str:
    exists = " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} WHERE {' AND '.join(f'{c} = NEW.{c}' for c in key)})" for key in keys
    )
    return (
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN {exists} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: a row with this key exists, "
        "REPLACE refused'); END"
    )


def _widen_money(connection: sa.Connection) -> None:
    for table, columns in MONEY_COLUMNS.items():
        for column in columns:
            scale = connection.execute(
                sa.text(
                    "SELECT numeric_scale FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = :table AND column_name = :column"
                ),
                {"table": table, "column": column},
            ).scalar()
            if scale != LEDGER_SCALE:
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE numeric(38, {LEDGER_SCALE})")


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        _widen_money(connection)
        return
    for table, keys in KEYS.items():
        op.execute(_sqlite_refuse_replace(table, keys))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in KEYS:
            op.execute(f"DROP TRIGGER {table}_no_replace")
