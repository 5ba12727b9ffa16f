"""Reads of the cost database that both its writer (finance) and its readers (insight) need."""

from __future__ import annotations

import sqlalchemy as sa

from chargeback_engine.costdb.tables import runs
from chargeback_engine.periods import Period


def head_run(connection: sa.Connection, period: Period | str) -> str | None:
    """The period's current run: the one no other run of the period supersedes."""
    superseded = sa.select(runs.c.supersedes).where(runs.c.period == str(period))
    return connection.execute(
        sa.select(runs.c.run_key).where(runs.c.period == str(period), runs.c.run_key.not_in(superseded))
    ).scalar()
