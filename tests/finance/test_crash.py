"""Crash safety: SIGKILL at random points while recording runs and while invoicing.

Each operation runs in a forked child that is killed after a random delay within the
operation's measured duration. After every kill the database must be consistent (no
invoice without its lines, no closed period without its journal, an intact audit chain),
and rerunning the operation must converge on exactly the state of an uninterrupted twin.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from chargeback_engine.costdb.connection import open_database
from chargeback_engine.costdb.tables import (
    audit_records,
    invoices,
    journal_batches,
    ledger_lines,
    period_closes,
    runs,
    statement_lines,
)
from chargeback_engine.finance import close_period, ingest_run, verify_audit_chain
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.periods import Period
from tests.finance.builders import MONTH, run_input

SETTINGS = FinanceSettings(payer_entity="ACME-US")
KILLS = {"sqlite": 100, "postgresql": 50}
KILLS_PER_OPERATION = 5
Operation = Callable[[sa.Engine], object]


def _month(i: int) -> str:
    return str(Period(2026, 1).shift(i))


def _operations(i: int) -> list[Operation]:
    """Record month *i* (160 ledger lines), then close it; the inputs are built before any fork."""
    run = run_input(
        _month(i),
        [
            (cc, f"{service}-{n}", str(Decimal(amount) + n), category, method)
            for n in range(20)
            for cc, service, amount, category, method in MONTH
        ],
    )
    return [lambda engine: ingest_run(engine, run), lambda engine: close_period(engine, _month(i), SETTINGS)]


def _kill_during(engine: sa.Engine, operation: Operation, duration: float, rng: random.Random) -> bool:
    """Run the operation in a forked child and SIGKILL it at a random moment; True if it was still running.

    The child reuses the parent's engine object with a fresh pool (``dispose(close=False)``),
    so it opens its own connections but keeps the compiled-statement cache and starts fast.
    """
    pid = os.fork()
    if pid == 0:  # the child never returns
        code = 1
        try:
            engine.dispose(close=False)
            operation(engine)
            code = 0
        finally:
            os._exit(code)
    time.sleep(rng.uniform(0, duration))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def _timed(engine: sa.Engine, operation: Operation) -> float:
    start = time.perf_counter()
    operation(engine)
    return time.perf_counter() - start


def _assert_consistent(engine: sa.Engine) -> None:
    assert verify_audit_chain(engine).ok
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                sa.select(ledger_lines.c.run_key, sa.func.count()).group_by(ledger_lines.c.run_key)
            ).all()
        )
        assert stored == dict(connection.execute(sa.select(runs.c.run_key, runs.c.line_count)).all())
        closed = set(connection.execute(sa.select(period_closes.c.period)).scalars())
        assert closed == set(connection.execute(sa.select(journal_batches.c.period)).scalars())
        assert closed == set(connection.execute(sa.select(statement_lines.c.period)).scalars())
        line_sums: dict[str, Decimal] = {}
        for invoice_id, amount in connection.execute(
            sa.select(statement_lines.c.invoice_id, statement_lines.c.amount).where(
                statement_lines.c.invoice_id.is_not(None)
            )
        ):
            line_sums[invoice_id] = line_sums.get(invoice_id, Decimal(0)) + amount
        issued = connection.execute(sa.select(invoices.c.invoice_id, invoices.c.period, invoices.c.subtotal)).all()
        assert {i.invoice_id: i.subtotal for i in issued} == line_sums  # no invoice without all its lines
        assert {i.period for i in issued} <= closed


def _fingerprint(engine: sa.Engine) -> tuple:
    with engine.connect() as connection:
        return (
            sorted(connection.execute(sa.select(runs.c.run_key, runs.c.content_hash)).all()),
            sorted(connection.execute(sa.select(invoices.c.invoice_id, invoices.c.document)).all()),
            sorted(connection.execute(sa.select(journal_batches.c.batch_id)).all()),
            connection.execute(sa.select(audit_records.c.hash).order_by(audit_records.c.seq.desc()).limit(1)).scalar(),
        )


def test_sigkill_during_runs_and_invoicing_never_leaves_a_partial_state(db_url: str, tmp_path: Path) -> None:
    backend = sa.make_url(db_url).get_backend_name()
    rng = random.Random(20261127)
    twin = open_database(f"sqlite:///{tmp_path / 'twin.db'}")
    engine = open_database(db_url)
    durations: dict[int, float] = {}
    kills, i = 0, 0
    while kills < KILLS[backend]:
        for kind, operation in enumerate(_operations(i)):
            operation(twin)
            if kind in durations:
                engine.dispose()  # no connection of the parent crosses the fork
                for _ in range(KILLS_PER_OPERATION):
                    kills += _kill_during(engine, operation, durations[kind] * 1.5, rng)
                    _assert_consistent(engine)
            durations[kind] = _timed(engine, operation)  # the rerun converges, or finds the work done
        i += 1
    assert _fingerprint(engine) == _fingerprint(twin)
    _assert_consistent(engine)
    engine.dispose()
    twin.dispose()
