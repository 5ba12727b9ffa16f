"""Runs: idempotent keys, conflicts, restatements of closed periods, concurrent identical runs."""

from __future__ import annotations

import multiprocessing
from decimal import Decimal

import pytest
import sqlalchemy as sa

from chargeback_engine.costdb.connection import open_database
from chargeback_engine.costdb.tables import adjustments, ledger_lines, runs
from chargeback_engine.errors import InputError, PeriodError
from chargeback_engine.finance import close_period, ingest_run, period_statuses, statement, verify_audit_chain
from chargeback_engine.finance.finance_errors import ClosedPeriodError, RunConflictError
from chargeback_engine.finance.settings import FinanceSettings
from tests.finance.builders import MONTH, run_input

SETTINGS = FinanceSettings(payer_entity="ACME-US")


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_same_key_writes_nothing_and_other_content_is_a_hard_error(books: sa.Engine) -> None:
    first = ingest_run(books, run_input("2026-01", MONTH))
    lines = _count(books, ledger_lines)
    again = ingest_run(books, run_input("2026-01", MONTH))
    assert first.committed and not again.committed
    assert again.run_key == first.run_key
    assert _count(books, ledger_lines) == lines == len(MONTH)
    assert _count(books, runs) == 1
    changed = [*MONTH[:-1], ("UNALLOCATED", "Amazon EC2", "1.0102", "unallocated", "none")]
    with pytest.raises(RunConflictError, match="already recorded with different content"):
        ingest_run(books, run_input("2026-01", changed))
    assert _count(books, runs) == 1


def test_bad_ledger_names_row_and_column(books: sa.Engine) -> None:
    run = run_input("2026-01", MONTH)
    wrong_period = run_input("2026-02", MONTH)
    with pytest.raises(InputError, match=r"ledger row 0, column 'period': '2026-02' is not the run's period 2026-01"):
        ingest_run(books, type(run)(**{**run.__dict__, "ledger": wrong_period.ledger}))
    bad = run_input("2026-01", [*MONTH, ("CC-100", "X", "1", "bogus", "tag")])
    with pytest.raises(InputError, match=r"ledger row 8, column 'category': 'bogus'"):
        ingest_run(books, bad)
    assert _count(books, runs) == 0


def test_new_version_of_an_open_period_supersedes_the_run(books: sa.Engine) -> None:
    ingest_run(books, run_input("2026-01", MONTH))
    restated = [("CC-100", "Amazon EC2", "200", "direct", "tag"), *MONTH[1:]]
    second = ingest_run(books, run_input("2026-01", restated, version="v2"))
    assert second.committed and not second.restated
    draft = statement(books, "2026-01", SETTINGS)
    assert draft.run_key == second.run_key
    assert sum(line.exact_amount for line in draft.lines) == sum(Decimal(r[2]) for r in restated)


def test_restating_a_closed_period_books_adjustments_into_the_next_open_one(books: sa.Engine) -> None:
    ingest_run(books, run_input("2026-01", MONTH))
    closed = close_period(books, "2026-01", SETTINGS)
    ingest_run(books, run_input("2026-02", MONTH))
    restated = [
        ("CC-100", "Amazon EC2", "110.123456789", "direct", "tag"),
        *MONTH[1:],
        ("CC-300", "AWS Support", "5", "direct", "tag"),
    ]
    result = ingest_run(books, run_input("2026-01", restated, version="v2"))
    assert result.restated and result.adjustment_period == "2026-02" and result.adjustments == 2

    after = statement(books, "2026-01", SETTINGS)
    assert after.closed and after.lines == closed.statement.lines and after.invoices == closed.statement.invoices

    feb = statement(books, "2026-02", SETTINGS)
    adjusted = {(l.cost_center, l.service_name): l for l in feb.lines if l.category == "adjustment"}
    assert adjusted[("CC-100", "Amazon EC2")].exact_amount == Decimal(10)
    assert adjusted[("CC-100", "Amazon EC2")].reference == "2026-01"
    assert adjusted[("CC-300", "AWS Support")].treatment == "showback"
    with books.connect() as connection:
        rows = connection.execute(sa.select(adjustments)).all()
    assert {r.corrects_period for r in rows} == {"2026-01"}
    assert {r.corrects_run for r in rows} == {closed.statement.run_key}
    assert {r.by_run for r in rows} == {result.run_key}
    january, february = period_statuses(books)
    assert (january.closed_run, january.restated_by) == (closed.statement.run_key, result.run_key)
    assert not february.closed and february.restated_by == ""
    assert verify_audit_chain(books).ok


def test_adjustments_skip_closed_periods(books: sa.Engine) -> None:
    for month in ("2026-01", "2026-02"):
        ingest_run(books, run_input(month, MONTH))
        close_period(books, month, SETTINGS)
    result = ingest_run(books, run_input("2026-01", [*MONTH, ("CC-100", "Amazon EC2", "1", "direct", "tag")], "v2"))
    assert result.adjustment_period == "2026-03"


def test_periods_close_in_order_once_and_need_a_run(books: sa.Engine) -> None:
    with pytest.raises(PeriodError, match="no run has been recorded for period 2026-01"):
        close_period(books, "2026-01", SETTINGS)
    ingest_run(books, run_input("2026-01", MONTH))
    ingest_run(books, run_input("2026-02", MONTH))
    with pytest.raises(ClosedPeriodError, match="close 2026-01 before 2026-02"):
        close_period(books, "2026-02", SETTINGS)
    assert close_period(books, "2026-01", SETTINGS).committed
    assert not close_period(books, "2026-01", SETTINGS).committed


def _ingest_in_process(url: str, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    engine = open_database(url)
    barrier.wait()
    results.put(ingest_run(engine, run_input("2026-01", MONTH * 50)).committed)


def test_two_processes_running_the_same_run_commit_exactly_once(db_url: str) -> None:
    open_database(db_url).dispose()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_ingest_in_process, args=(db_url, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    outcomes = sorted([results.get(timeout=5), results.get(timeout=5)])
    assert outcomes == [False, True]
    engine = open_database(db_url)
    assert _count(engine, runs) == 1
    assert _count(engine, ledger_lines) == len(MONTH) * 50
    engine.dispose()
