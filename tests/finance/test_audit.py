"""The hash-chained audit log detects altered, deleted and reordered records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.finance import close_period, ingest_run, verify
from chargeback_engine.finance.audit import GENESIS, record_hash
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.finance.tables import audit_records
from tests.finance.builders import MONTH, run_input


@pytest.fixture
def chained(books: sa.Engine) -> sa.Engine:
    settings = FinanceSettings(payer_entity="ACME-US")
    ingest_run(books, run_input("2026-01", MONTH))
    close_period(books, "2026-01", settings)
    ingest_run(books, run_input("2026-02", MONTH))
    report = verify(books)
    assert report.ok and report.records == 4
    return books


def _tamper(engine: sa.Engine, *statements: str) -> None:
    """Change the audit table as an attacker with owner rights would: around the triggers."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        else:
            connection.execute(sa.text("DROP TRIGGER audit_records_no_update"))
            connection.execute(sa.text("DROP TRIGGER audit_records_no_delete"))
        for statement in statements:
            connection.execute(sa.text(statement))


FLIP = "UPDATE audit_records SET payload = replace(payload, '\"period\":\"2026-01\"', '\"period\":\"2026-11\"') WHERE seq = 1"
DELETE = "DELETE FROM audit_records WHERE seq = 2"
REORDER = ("UPDATE audit_records SET seq = -1 WHERE seq = 2",
           "UPDATE audit_records SET seq = 2 WHERE seq = 3",
           "UPDATE audit_records SET seq = 3 WHERE seq = -1")


@pytest.mark.parametrize(("statements", "expected"), [
    ((FLIP,), "record 1: content does not match its hash (altered)"),
    ((DELETE,), "record 3: expected sequence number 2 (a record is missing)"),
    (REORDER, "record 2: link to the previous record is broken (deleted or reordered)"),
], ids=["flipped-byte", "deleted", "reordered"])
def test_verify_detects_tampering(chained: sa.Engine, db_url: str, statements: tuple[str, ...], expected: str) -> None:
    _tamper(chained, *statements)
    report = verify(chained)
    assert not report.ok and expected in report.problems
    result = CliRunner().invoke(main, ["audit", "verify", "--db", db_url])
    assert result.exit_code == 1 and expected in result.output


def test_a_rewritten_chain_no_longer_matches_the_issued_invoices(chained: sa.Engine) -> None:
    _tamper(chained)
    with chained.begin() as connection:  # drop the first record and re-link the rest into a consistent chain
        rows = connection.execute(sa.select(audit_records).where(audit_records.c.seq > 1)
                                  .order_by(audit_records.c.seq)).all()
        connection.execute(sa.delete(audit_records))
        prev = GENESIS
        for new_seq, row in enumerate(rows, start=1):
            digest = record_hash(new_seq, row.kind, row.subject, row.payload, prev)
            connection.execute(audit_records.insert().values(seq=new_seq, kind=row.kind, subject=row.subject,
                                                             payload=row.payload, prev_hash=prev, hash=digest))
            prev = digest
    problems = verify(chained).problems
    assert not any("record" in p for p in problems)
    assert any(p.startswith("invoices inv-") and "is not in the chain" in p for p in problems)


def test_an_empty_log_verifies(books: sa.Engine) -> None:
    report = verify(books)
    assert report.ok and report.records == 0 and report.head == GENESIS


def test_cli_reports_an_intact_chain(chained: sa.Engine, db_url: str) -> None:
    result = CliRunner().invoke(main, ["audit", "verify", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 4 records" in result.output
