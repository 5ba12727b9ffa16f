"""run_tag_compliance: each cost center's tag compliance in a run, append-only like every table

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargeback_engine.costdb.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLE = "run_tag_compliance"
KEY = ("run_key", "cost_center", "currency")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("run_key", sa.String(length=80), nullable=False),
        sa.Column("cost_center", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("compliant_lines", sa.BigInteger(), nullable=False),
        sa.Column("spend", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.Column("compliant_spend", chargeback_engine.costdb.tables.Money(length=64), nullable=False),
        sa.PrimaryKeyConstraint(*KEY),
    )
    if op.get_bind().dialect.name == "postgresql":  # the function is 0002's
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION chargeback_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION chargeback_refuse_change()"
        )
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {TABLE} FROM PUBLIC")
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{verb.lower()} BEFORE {verb} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: {verb} refused'); END"
        )
    exists = f"EXISTS (SELECT 1 FROM {TABLE} WHERE {' AND '.join(f'{c} = NEW.{c}' for c in KEY)})"
    op.execute(
        f"CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE} WHEN {exists} "
        f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: a row with this key exists, REPLACE refused'); END"
    )


def downgrade() -> None:
    op.drop_table(TABLE)  # its triggers go with it
