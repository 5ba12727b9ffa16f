"""The hash-chained audit log: altered, deleted, reordered and cut-off records, and edited money rows."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.costdb.tables import (
    audit_records,
    dispute_events,
    disputes,
    invoices,
    journal_lines,
    period_closes,
    runs,
    statement_lines,
)
from chargeback_engine.finance import (
    close_period,
    export_invoices,
    ingest_run,
    submit_dispute,
    transition,
    verify_audit_chain,
)
from chargeback_engine.finance.audit import COVERED, GENESIS, record_hash, witnesses_in
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.money import LEDGER_QUANTUM
from tests.finance.builders import MONTH, run_input

SETTINGS = FinanceSettings(payer_entity="ACME-US")


def _at_scale(amount: str | int) -> str:
    """An amount as the chain records it: at the ledger scale."""
    return format(Decimal(amount).quantize(LEDGER_QUANTUM), "f")


@pytest.fixture
def chained(books: sa.Engine) -> sa.Engine:
    """January recorded and closed (2 invoices), February recorded: 7 records."""
    ingest_run(books, run_input("2026-01", MONTH))
    close_period(books, "2026-01", SETTINGS)
    ingest_run(books, run_input("2026-02", MONTH))
    report = verify_audit_chain(books)
    assert report.ok and report.records == 7, report.problems
    return books


def _open(connection: sa.Connection, *tables: str) -> None:
    """Lift the append-only triggers as an attacker with owner rights would."""
    for table in tables:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            for verb in ("update", "delete", "replace"):
                connection.execute(sa.text(f"DROP TRIGGER {table}_no_{verb}"))


def _tamper(engine: sa.Engine, tables: tuple[str, ...], *statements: str) -> None:
    with engine.begin() as connection:
        _open(connection, *tables)
        for statement in statements:
            connection.execute(sa.text(statement))


def _verify_cli(db_url: str, *witnesses: Path) -> tuple[int, str]:
    args = ["audit", "verify", "--db", db_url, *(a for w in witnesses for a in ("--witness", str(w)))]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


FLIP = (
    'UPDATE audit_records SET payload = replace(payload, \'"period":"2026-01"\', \'"period":"2026-11"\') WHERE seq = 1'
)
DELETE = "DELETE FROM audit_records WHERE seq = 2"
REORDER = (
    "UPDATE audit_records SET seq = -1 WHERE seq = 2",
    "UPDATE audit_records SET seq = 2 WHERE seq = 3",
    "UPDATE audit_records SET seq = 3 WHERE seq = -1",
)


TAMPERING = [
    ((FLIP,), "record 1: content does not match its hash (altered)"),
    ((DELETE,), "record 3: expected sequence number 2 (a record is missing)"),
    (REORDER, "record 2: link to the previous record is broken (deleted or reordered)"),
]


def test_verify_detects_a_flipped_byte_a_deleted_and_a_reordered_record(chained: sa.Engine, db_url: str) -> None:
    code, output = _verify_cli(db_url)
    assert code == 0 and "audit chain intact: 7 records" in output
    assert "checked against period close 2026-01 (record 6)" in output
    _tamper(chained, ("audit_records",))
    with chained.connect() as connection:
        original = [row._asdict() for row in connection.execute(sa.select(audit_records))]
    for statements, expected in TAMPERING:
        with chained.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
        assert expected in verify_audit_chain(chained).problems
        code, output = _verify_cli(db_url)
        assert code == 1 and expected in output
        with chained.begin() as connection:  # put the true chain back for the next case
            connection.execute(sa.delete(audit_records))
            connection.execute(audit_records.insert(), original)
        assert verify_audit_chain(chained).ok


@pytest.mark.parametrize("cut", [1, 2])
def test_cutting_off_the_last_records_is_detected(chained: sa.Engine, db_url: str, cut: int) -> None:
    _tamper(chained, ("audit_records",), f"DELETE FROM audit_records WHERE seq > {7 - cut}")
    problems = verify_audit_chain(chained).problems
    assert any(p.startswith("runs run-") and "no audit record holds this row" in p for p in problems)
    if cut == 2:  # the close's own record is gone: the close row and the witnesses it handed out betray it
        assert any(p.startswith("period_closes 2026-01: no audit record holds this row") for p in problems)
        assert any(
            p.startswith("period close 2026-01: its audit head") and "is not in the chain" in p for p in problems
        )
    code, output = _verify_cli(db_url)
    assert code == 1 and f"audit chain broken: {len(problems)} problem" in output


def test_a_handed_out_witness_catches_a_tail_cut_with_its_rows(chained: sa.Engine, db_url: str, tmp_path: Path) -> None:
    """Records and the rows they cover deleted together: only a witness that left the building sees it."""
    manifest = export_invoices(chained, "2026-01", tmp_path / "invoices")
    assert json.loads(manifest.read_text())["audit_seq"] == 7
    code, output = _verify_cli(db_url, manifest)
    assert code == 0 and f"checked against {manifest} (record 7)" in output
    _tamper(
        chained,
        ("audit_records", "runs", "run_cost_centers", "ledger_lines"),
        "DELETE FROM audit_records WHERE seq = 7",
        "DELETE FROM ledger_lines WHERE period = '2026-02'",
        "DELETE FROM run_cost_centers WHERE run_key NOT IN (SELECT run_key FROM runs WHERE period = '2026-01')",
        "DELETE FROM runs WHERE period = '2026-02'",
    )
    assert verify_audit_chain(chained).ok  # consistent inside: the database alone cannot tell
    expected = f"witness {manifest}: it saw record 7, but the chain ends at record 6 (the last record was deleted)"
    assert verify_audit_chain(chained, witnesses_in(manifest)).problems == (expected,)
    code, output = _verify_cli(db_url, manifest)
    assert code == 1 and expected in output and "1 problem in 6 records" in output


def test_a_witness_sees_a_rewritten_chain(chained: sa.Engine, tmp_path: Path) -> None:
    manifest = export_invoices(chained, "2026-01", tmp_path / "invoices")
    _tamper(chained, ("audit_records",))
    with chained.begin() as connection:  # drop the first record and re-link the rest into a consistent chain
        rows = connection.execute(
            sa.select(audit_records).where(audit_records.c.seq > 1).order_by(audit_records.c.seq)
        ).all()
        connection.execute(sa.delete(audit_records))
        prev = GENESIS
        for new_seq, row in enumerate(rows, start=1):
            digest = record_hash(new_seq, row.kind, row.subject, row.payload, prev)
            connection.execute(
                audit_records.insert().values(
                    seq=new_seq, kind=row.kind, subject=row.subject, payload=row.payload, prev_hash=prev, hash=digest
                )
            )
            prev = digest
    problems = verify_audit_chain(chained, witnesses_in(manifest)).problems
    assert not any(p.startswith("record") for p in problems)
    assert any(p.startswith("runs run-") and "no audit record holds this row" in p for p in problems)
    assert any(p.startswith("invoice inv-") and "is not in the chain" in p for p in problems)
    assert any(p.startswith(f"witness {manifest}: it saw record 7, but the chain ends at record 6") for p in problems)


def test_a_witness_sees_a_chain_rewritten_to_the_same_length(chained: sa.Engine, tmp_path: Path) -> None:
    manifest = export_invoices(chained, "2026-01", tmp_path / "invoices")
    (invoice_json,) = [p for p in (tmp_path / "invoices").iterdir() if p.name == "2026-01_CC-100_USD.json"]
    _tamper(chained, ("audit_records",))
    with chained.begin() as connection:  # change record 1, then re-hash every record after it
        rows = connection.execute(sa.select(audit_records).order_by(audit_records.c.seq)).all()
        connection.execute(sa.delete(audit_records))
        prev = GENESIS
        for row in rows:
            payload = row.payload.replace('"period":"2026-01"', '"period":"2026-11"') if row.seq == 1 else row.payload
            digest = record_hash(row.seq, row.kind, row.subject, payload, prev)
            connection.execute(
                audit_records.insert().values(
                    seq=row.seq, kind=row.kind, subject=row.subject, payload=payload, prev_hash=prev, hash=digest
                )
            )
            prev = digest
    problems = verify_audit_chain(chained, [*witnesses_in(manifest), *witnesses_in(invoice_json)]).problems
    assert any(
        p.startswith(f"witness {manifest}: it saw record 7 with hash ") and p.endswith("(the chain was rewritten)")
        for p in problems
    )
    assert any(p.startswith(f"witness {invoice_json}: it saw record 6 with hash ") for p in problems)


def _invoice(engine: sa.Engine, cost_center: str = "CC-100") -> sa.Row:
    with engine.connect() as connection:
        return connection.execute(sa.select(invoices).where(invoices.c.cost_center == cost_center)).one()


def test_direct_edits_of_the_money_are_reported_with_the_record_and_the_change(
    chained: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARGEBACK_LOCALE", "en_US")
    invoice = _invoice(chained)
    forged_document = invoice.document.replace('"total":"120.13"', '"total":"9999.99"')
    assert forged_document != invoice.document
    with chained.begin() as connection:
        _open(connection, "invoices", "statement_lines", "period_closes", "journal_lines")
        connection.execute(
            sa.update(invoices)
            .where(invoices.c.invoice_id == invoice.invoice_id)
            .values(total=Decimal("9999.99"), document=forged_document)
        )
        connection.execute(
            sa.update(statement_lines).where(statement_lines.c.line_no == 0).values(amount=Decimal("21"))
        )
        connection.execute(sa.update(period_closes).values(statement_hash="sha256:forged"))
        connection.execute(sa.update(journal_lines).where(journal_lines.c.line_no == 0).values(memo="edited"))
        connection.execute(
            sa.update(statement_lines).where(statement_lines.c.line_no == 1).values(exact_amount=Decimal("1E-9"))
        )
    report = verify_audit_chain(chained)
    problems = report.problems
    # For people, money in the reader's format, and the stored text where that format rounds it away.
    assert (
        f"invoices {invoice.invoice_id}: total is 9,999.99 USD in the database, 120.13 USD when recorded "
        "in audit record 3" in report.shown
    )
    [tiny] = [p for p in report.shown if p.startswith("statement_lines (period 2026-01, line_no 1): exact_amount is")]
    assert tiny.startswith("statement_lines (period 2026-01, line_no 1): exact_amount is 0.00 USD in the database, ")
    assert f"when recorded (stored {_at_scale('1E-9')} and " in tiny and tiny.endswith(") in audit record 2")
    assert len(report.shown) == len(problems)
    assert (
        f"invoices {invoice.invoice_id}: total is {_at_scale('9999.99')} in the database, "
        f"{_at_scale('120.13')} when recorded in audit record 3" in problems
    )
    assert (
        f"invoices {invoice.invoice_id}: document.total is 9999.99 in the database, 120.13 when recorded "
        "in audit record 3" in problems
    )
    assert (
        f"statement_lines (period 2026-01, line_no 0): amount is {_at_scale(21)} in the database, "
        f"{_at_scale('100.12')} when recorded in audit record 2" in problems
    )
    assert any(p.startswith("period_closes 2026-01: statement_hash is sha256:forged in the database") for p in problems)
    assert any(
        p.startswith("journal_lines (entry_id je-") and ": memo is edited in the database" in p for p in problems
    )


def test_a_document_that_is_no_longer_json_is_reported_not_raised(chained: sa.Engine, db_url: str) -> None:
    invoice = _invoice(chained)
    with chained.begin() as connection:
        _open(connection, "invoices")
        connection.execute(
            sa.update(invoices).where(invoices.c.invoice_id == invoice.invoice_id).values(document="{broken")
        )
    assert any(
        p.startswith(f"invoices {invoice.invoice_id}: document is {{broken in the database")
        for p in verify_audit_chain(chained).problems
    )
    listed = CliRunner().invoke(main, ["invoice", "list", "--period", "2026-01", "--db", db_url])
    assert listed.exit_code == 1 and "a stored invoice document cannot be read" in listed.output
    assert listed.exception is None or isinstance(listed.exception, SystemExit)


def test_dispute_events_are_covered(chained: sa.Engine) -> None:
    dispute = submit_dispute(
        chained,
        period="2026-01",
        cost_center="CC-100",
        dispute_type="usage",
        amount=Decimal("5"),
        description="double counted",
        submitted_by="alice",
        settings=SETTINGS,
    )
    transition(chained, dispute.dispute_id, "review", actor="bob", settings=SETTINGS)
    transition(chained, dispute.dispute_id, "approve", actor="carol", settings=SETTINGS, credit=Decimal("4"))
    assert verify_audit_chain(chained).ok
    with chained.begin() as connection:
        _open(connection, "dispute_events", "disputes")
        connection.execute(sa.update(dispute_events).where(dispute_events.c.seq == 3).values(credit=Decimal(5)))
        connection.execute(sa.update(disputes).values(amount=Decimal(50)))
    problems = verify_audit_chain(chained).problems
    assert (
        f"dispute_events (dispute_id {dispute.dispute_id}, seq 3): credit is {_at_scale(5)} in the database, "
        f"{_at_scale(4)} when recorded in audit record 10" in problems
    )
    assert any(p.startswith(f"disputes {dispute.dispute_id}: amount is 50") for p in problems)


def test_replace_and_upsert_are_refused_and_a_forced_replace_is_detected(chained: sa.Engine) -> None:
    invoice = _invoice(chained)
    if chained.dialect.name == "sqlite":
        forge = (
            f"INSERT OR REPLACE INTO invoices SELECT invoice_id, period, cost_center, currency, subtotal, markup, "
            f"'9999.99', audit_head, document FROM invoices WHERE invoice_id = '{invoice.invoice_id}'"
        )
        also = [
            forge.replace("INSERT OR REPLACE", "REPLACE"),
            f"INSERT INTO invoices SELECT * FROM invoices WHERE invoice_id = '{invoice.invoice_id}' "
            "ON CONFLICT (invoice_id) DO UPDATE SET total = '9999.99'",
        ]
    else:
        forge = (
            f"INSERT INTO invoices SELECT * FROM invoices WHERE invoice_id = '{invoice.invoice_id}' "
            "ON CONFLICT (invoice_id) DO UPDATE SET total = 9999.99"
        )
        also = []
    for statement in (forge, *also):
        with pytest.raises(sa.exc.DatabaseError, match="invoices is append-only"):
            with chained.begin() as connection:
                connection.execute(sa.text(statement))
    assert _invoice(chained).total == invoice.total and verify_audit_chain(chained).ok
    _tamper(chained, ("invoices",), forge)  # with the triggers lifted the forgery lands, and is reported
    assert _invoice(chained).total == Decimal("9999.99")
    assert any(
        p.startswith(f"invoices {invoice.invoice_id}: total is 9999.99") for p in verify_audit_chain(chained).problems
    )


def test_rows_added_or_removed_behind_the_products_back(chained: sa.Engine) -> None:
    with chained.connect() as connection:
        run = connection.execute(sa.select(runs).where(runs.c.period == "2026-02")).one()
    _tamper(
        chained,
        ("runs", "invoices"),
        "DELETE FROM invoices WHERE cost_center = 'CC-200'",
        f"INSERT INTO runs VALUES ('run-forged', '2026-03', 'x', 'x', '{{}}', 'x', '{run.run_key}', 'U', 0)",
    )
    problems = verify_audit_chain(chained).problems
    assert (
        "runs run-forged: no audit record holds this row (added outside the product, or its record was deleted)"
        in problems
    )
    assert any(
        p.startswith("invoices inv-") and p.endswith("the row recorded in audit record 4 is missing") for p in problems
    )


def test_the_chain_covers_the_money_tables() -> None:
    assert {t.name for t in COVERED} >= {
        "invoices",
        "statement_lines",
        "journal_batches",
        "journal_entries",
        "journal_lines",
        "dispute_events",
        "disputes",
        "period_closes",
    }


def test_witness_files_must_carry_a_head(tmp_path: Path) -> None:
    (tmp_path / "plain.json").write_text("{}")
    (tmp_path / "page.html").write_text("<html>")
    for name in ("plain.json", "page.html"):
        with pytest.raises(Exception, match=f"{name}: "):
            witnesses_in(tmp_path / name)


def test_an_empty_log_verifies(books: sa.Engine) -> None:
    report = verify_audit_chain(books)
    assert report.ok and report.records == 0 and report.head == GENESIS and report.witnesses == ()


def test_invoice_list_refuses_invoices_that_do_not_add_up(chained: sa.Engine, db_url: str) -> None:
    invoice = _invoice(chained)
    forged = invoice.document.replace('"total":"120.13"', '"total":"9999.99"')
    with chained.begin() as connection:  # the issue's forgery: same id, another total
        _open(connection, "invoices")
        connection.execute(
            sa.update(invoices)
            .where(invoices.c.invoice_id == invoice.invoice_id)
            .values(total=Decimal("9999.99"), document=forged)
        )
    result = CliRunner().invoke(main, ["invoice", "list", "--period", "2026-01", "--db", db_url])
    assert result.exit_code == 1
    assert f"invoice {invoice.invoice_id}: subtotal 120.13 + markup 0.00 is not its total 9999.99 USD" in result.output
    assert "the invoices of 2026-01 do not add up (1 problem); run chargeback audit verify" in result.output
