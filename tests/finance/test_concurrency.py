"""Two finance commands on one database at once, as real processes: one waits, nothing is half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from chargeback_engine.costdb.connection import open_database
from chargeback_engine.costdb.tables import invoices, journal_batches, ledger_lines, period_closes, runs
from chargeback_engine.finance import close_period, ingest_run, verify_audit_chain
from chargeback_engine.finance.settings import FinanceSettings
from tests.finance.builders import MONTH, ledger_table, run_input
from tests.finance.test_cli import POLICY


@pytest.fixture
def workspace(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "acme.yaml").write_text(POLICY)
    pq.write_table(ledger_table("2026-01", MONTH * 200), tmp_path / "2026-01.parquet")
    open_database(db_url).dispose()  # migrated before the race: the race is about the commands
    return tmp_path


def _start(workspace: Path, db_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CHARGEBACK_DB": db_url}
    return subprocess.Popen(
        [sys.executable, "-m", "chargeback_engine", *args],
        cwd=workspace,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _race(workspace: Path, db_url: str, *commands: tuple[str, ...]) -> list[tuple[int, str]]:
    """Start every command before waiting for any; return each exit code and its output."""
    started = [_start(workspace, db_url, *command) for command in commands]
    finished = []
    for process in started:
        out, err = process.communicate(timeout=300)
        finished.append((process.returncode, out + err))
    return finished


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _ingest(version: str) -> tuple[str, ...]:
    return (
        "ledger",
        "ingest",
        "--ledger",
        "2026-01.parquet",
        "--policy",
        "acme.yaml",
        "--period",
        "2026-01",
        "--source-version",
        f"focus.csv={version}",
    )


def test_two_ledger_ingests_at_once(workspace: Path, db_url: str) -> None:
    """The same run twice and a newer run of the period: each commits whole, one after the other."""
    outcomes = _race(workspace, db_url, _ingest("v1"), _ingest("v1"), _ingest("v2"))
    assert all(code == 0 for code, _ in outcomes), outcomes
    same = sorted(": recorded" in output for _, output in outcomes[:2])
    assert same == [False, True]  # the identical run: one records it, the other finds it recorded
    engine = open_database(db_url)
    assert _count(engine, runs) == 2
    assert _count(engine, ledger_lines) == 2 * len(MONTH) * 200
    report = verify_audit_chain(engine)
    assert report.ok and report.records == 2, report.problems
    engine.dispose()


def test_two_period_closes_at_once(workspace: Path, db_url: str) -> None:
    engine = open_database(db_url)
    ingest_run(engine, run_input("2026-01", MONTH * 200))
    outcomes = _race(
        workspace, db_url, ("period", "close", "--period", "2026-01"), ("period", "close", "--period", "2026-01")
    )
    assert all(code == 0 for code, _ in outcomes), outcomes
    said = sorted("2026-01 closed:" in output for _, output in outcomes)
    assert said == [False, True] and any("2026-01 was already closed" in output for _, output in outcomes)
    assert _count(engine, period_closes) == 1 and _count(engine, journal_batches) == 1
    assert _count(engine, invoices) == 2
    assert verify_audit_chain(engine).ok
    engine.dispose()


def test_a_close_racing_a_restatement_leaves_one_consistent_story(workspace: Path, db_url: str) -> None:
    """Whichever commits first, the other sees it: the close uses the newer run, or the run restates the close."""
    engine = open_database(db_url)
    ingest_run(engine, run_input("2026-01", MONTH * 200))
    outcomes = _race(workspace, db_url, ("period", "close", "--period", "2026-01"), _ingest("v2"))
    assert all(code == 0 for code, _ in outcomes), outcomes
    closed_run = close_period(engine, "2026-01", FinanceSettings()).statement.run_key
    with engine.connect() as connection:
        newest = connection.execute(sa.select(runs.c.run_key).where(runs.c.supersedes != "")).scalar_one()
    restated = "adjustment lines booked into 2026-02" in outcomes[1][1]
    assert closed_run != newest if restated else closed_run == newest
    assert verify_audit_chain(engine).ok
    engine.dispose()
