"""Statements and invoices: conservation to the minor unit, modes, markup, ids, rendering."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import assume, given
from hypothesis import strategies as st

from chargeback_engine.costdb.connection import open_database
from chargeback_engine.engine.runner import Engine
from chargeback_engine.finance import RunInput, close_period, export_invoices, ingest_run, statement
from chargeback_engine.finance.finance_errors import ClosedPeriodError
from chargeback_engine.finance.rounding import round_conserving, round_groups, round_to, round_total
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE, minor_units, quantum
from chargeback_engine.policy.policy_model import CostCenter
from tests.finance.builders import COST_CENTERS, MONTH, run_input

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SETTINGS = FinanceSettings(payer_entity="ACME-US", markups={("ACME-US", "ACME-DE"): Decimal("0.05")})

# Amounts at the ledger scale, drawn as integers of 1e-10 units (fast to generate, every digit exercised).
amounts = st.integers(min_value=-(10**19), max_value=10**19).map(lambda units: Decimal(units).scaleb(-10))


@given(st.lists(amounts, min_size=1, max_size=50), st.sampled_from(["USD", "JPY", "KWD"]))
def test_rounding_conserves_the_rounded_total(values: list[Decimal], currency: str) -> None:
    rounded = round_conserving(values, currency)
    unit = quantum(minor_units(currency))
    assert sum(rounded, Decimal(0)) == round_total(sum(values, Decimal(0)), currency)
    assert all(r == r.quantize(unit) for r in rounded)
    assert all(abs(r - v) < unit for r, v in zip(rounded, values))


@given(st.lists(amounts, min_size=1, max_size=50), st.sampled_from(["USD", "JPY", "KWD"]))
def test_credits_round_as_the_mirror_image_of_charges(values: list[Decimal], currency: str) -> None:
    unit = quantum(minor_units(currency))
    remainders = [v - v.quantize(unit, rounding=ROUND_FLOOR) for v in values]
    total = sum(values, Decimal(0))
    assume(len(set(remainders)) == len(remainders) and (total / unit * 2) % 2 != 1)  # no ties to break
    assert round_conserving([-v for v in values], currency) == [-r for r in round_conserving(values, currency)]


@given(
    st.lists(st.lists(amounts, min_size=1, max_size=8), min_size=1, max_size=12), st.sampled_from(["USD", "JPY", "KWD"])
)
def test_cost_centers_are_rounded_first_then_their_lines(groups: list[list[Decimal]], currency: str) -> None:
    unit = quantum(minor_units(currency))
    rounded = round_groups(groups, currency)
    everything = [v for group in groups for v in group]
    assert sum((r for group in rounded for r in group), Decimal(0)) == round_total(
        sum(everything, Decimal(0)), currency
    )
    totals = [sum(group, Decimal(0)) for group in rounded]
    exact_totals = [sum(group, Decimal(0)) for group in groups]
    assert all(abs(t - e) < unit for t, e in zip(totals, exact_totals))  # each cost center within one unit
    assert all(t == 0 for t, e in zip(totals, exact_totals) if e == 0)  # a pool that nets to zero shows zero
    # the residue is the only reason a cost center is more than half a unit away: at most that many are
    nearest = sum((round_total(e, currency) for e in exact_totals), Decimal(0))
    residue = abs(round_total(sum(everything, Decimal(0)), currency) - nearest) / unit
    assert sum(1 for t, e in zip(totals, exact_totals) if abs(t - e) > unit / 2) <= residue


def test_a_pool_that_nets_to_zero_shows_zero() -> None:
    assert round_conserving([Decimal("50"), Decimal("-49.996"), Decimal("-0.004")], "USD") == [
        Decimal("50.00"),
        Decimal("-50.00"),
        Decimal("0.00"),
    ]
    assert round_to([Decimal("-0.004"), Decimal("0.004")], Decimal("0.00"), "USD") == [Decimal("0.00")] * 2


def test_rounding_regression_one_cent_split_in_halves() -> None:
    assert round_conserving([Decimal("0.005"), Decimal("0.005")], "USD") == [Decimal("0.01"), Decimal("0.00")]
    assert round_conserving([Decimal("0.5"), Decimal("0.5"), Decimal("0.5")], "JPY") == [
        Decimal(1),
        Decimal(1),
        Decimal(0),
    ]


def test_invoices_showback_and_unallocated_add_up_to_the_period_total(books: sa.Engine) -> None:
    for month, currency in enumerate(["USD", "JPY", "KWD"], start=1):
        _conserves(books, f"2026-{month:02d}", currency)


def _conserves(books: sa.Engine, period: str, currency: str) -> None:
    rows = [
        (cc, f"svc-{i % 7}", f"{Decimal(i * 7919 % 10007) / Decimal(997):.10f}", "direct", "tag")
        for i, cc in enumerate(["CC-100", "CC-200", "CC-300", "CC-400", "CC-100", "CC-200"] * 40)
    ]
    rows.append(("UNALLOCATED", "svc-0", "0.4999999999", "unallocated", "none"))
    ingest_run(books, run_input(period, rows, currency=currency))
    result = close_period(books, period, SETTINGS)
    totals = result.statement.totals()[currency]
    source_total = sum((Decimal(r[2]) for r in rows), Decimal(0))
    assert totals["exact"] == source_total
    assert totals["invoice"] + totals["showback"] + totals["unallocated"] == round_total(source_total, currency)
    places = quantum(minor_units(currency))
    for invoice in result.statement.invoices:
        assert invoice.subtotal == sum(line.amount for line in invoice.lines)
        assert all(line.amount == line.amount.quantize(places) for line in invoice.lines)
        assert invoice.total == invoice.subtotal + invoice.markup


def test_every_cost_center_of_the_sample_month_is_within_half_a_cent(books: sa.Engine) -> None:
    """The README sample month: cost-center totals are rounded first, then their lines."""
    result = Engine(POLICIES / "acme.yaml").run([POLICIES / "data" / "acme-focus-2026-10.csv"], "2026-10")
    ingest_run(books, RunInput.from_result(result))
    closed = close_period(books, "2026-10", SETTINGS).statement
    exact: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    rounded: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in closed.lines:
        exact[(line.cost_center, line.treatment)] += line.exact_amount
        rounded[(line.cost_center, line.treatment)] += line.amount
    assert all(abs(rounded[key] - exact[key]) <= Decimal("0.005") for key in exact), {
        key: (exact[key], rounded[key]) for key in exact
    }
    assert rounded[("CC-1004", "invoice")] == Decimal("25397.96")  # ledger 25397.9564900716
    assert rounded[("CC-9000", "showback")] == 0  # the platform pool is fully redistributed
    totals = closed.totals()["USD"]
    assert (
        totals["invoice"] + totals["showback"] + totals["unallocated"]
        == Decimal("111147.81")
        == round_total(totals["exact"], "USD")
    )
    for invoice in closed.invoices:
        assert (
            invoice.subtotal == sum(line.amount for line in invoice.lines) == rounded[(invoice.cost_center, "invoice")]
        )


def test_modes_and_compliance_threshold(books: sa.Engine) -> None:
    centers = [
        CostCenter("AUTO-90", "Ninety", mode="auto"),
        CostCenter("AUTO-89", "Eighty-nine", mode="auto"),
        CostCenter("SHOW", "Show", mode="showback"),
        CostCenter("CHARGE", "Charge", mode="chargeback"),
    ]
    rows = [
        ("AUTO-90", "EC2", "90", "direct", "tag"),
        ("AUTO-90", "EC2", "-10", "direct", "direct"),
        ("AUTO-89", "EC2", "89", "direct", "tag"),
        ("AUTO-89", "EC2", "11", "direct", "direct"),
        ("SHOW", "EC2", "5", "direct", "tag"),
        ("CHARGE", "EC2", "5", "direct", "direct"),
    ]
    ingest_run(books, run_input("2026-01", rows, cost_centers=centers))
    draft = statement(books, "2026-01", FinanceSettings())
    assert draft.terms["AUTO-90"].compliance == Decimal("0.9")
    assert {cc: t.mode for cc, t in draft.terms.items()} == {
        "AUTO-90": "chargeback",
        "AUTO-89": "showback",
        "SHOW": "showback",
        "CHARGE": "chargeback",
    }
    assert [inv.cost_center for inv in draft.invoices] == ["AUTO-90", "CHARGE"]
    stricter = statement(books, "2026-01", FinanceSettings(compliance_threshold=Decimal("0.95")))
    assert [inv.cost_center for inv in stricter.invoices] == ["CHARGE"]


def test_markup_applies_per_entity_pair(books: sa.Engine) -> None:
    ingest_run(books, run_input("2026-01", MONTH))
    invoices = {inv.cost_center: inv for inv in statement(books, "2026-01", SETTINGS).invoices}
    assert invoices["CC-100"].markup_rate == 0 and invoices["CC-100"].markup == 0
    de = invoices["CC-200"]
    assert de.markup_rate == Decimal("0.05")
    assert de.subtotal == Decimal("47.22") and de.markup == Decimal("2.36") and de.total == Decimal("49.58")


def test_invoice_ids_are_deterministic_across_databases_and_backends(db_url: str, tmp_path: Path) -> None:
    ids = []
    for url in (db_url, f"sqlite:///{tmp_path / 'other.db'}"):
        engine = open_database(url)
        ingest_run(engine, run_input("2026-01", MONTH))
        ids.append([inv.invoice_id for inv in close_period(engine, "2026-01", SETTINGS).statement.invoices])
        engine.dispose()
    assert ids[0] == ids[1] and len(ids[0]) == 2
    assert all(i.startswith("inv-") for i in ids[0])


def test_rendered_invoices_json_csv_html_with_manifest(books: sa.Engine, tmp_path: Path) -> None:
    centers = [CostCenter("=cmd|' /C calc'!A0", "Evil <script>", mode="chargeback"), *COST_CENTERS]
    ingest_run(
        books,
        run_input("2026-01", [*MONTH, ("=cmd|' /C calc'!A0", "EC2", "-1.5", "direct", "tag")], cost_centers=centers),
    )
    with pytest.raises(ClosedPeriodError, match="not closed"):
        export_invoices(books, "2026-01", tmp_path / "draft")
    closed = close_period(books, "2026-01", SETTINGS)
    manifest_path = export_invoices(books, "2026-01", tmp_path / "out")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["audit_head"].startswith("sha256:")
    assert len(manifest["outputs"]) == 3 * len(closed.statement.invoices)
    for entry in manifest["outputs"]:
        data = (tmp_path / "out" / entry["file"]).read_bytes()
        assert entry["sha256"] == "sha256:" + hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    invoice = json.loads((tmp_path / "out" / "2026-01_CC-200_USD.json").read_text())
    assert invoice["total"] == "49.58" and invoice["audit_head"] == closed.statement.invoices[1].audit_head
    rows = list(csv.DictReader(_evil_file(tmp_path / "out", ".csv").splitlines()))
    assert rows[0]["cost_center"].startswith("'=")
    assert rows[0]["amount"] == "-1.50"
    page = _evil_file(tmp_path / "out", ".html")
    assert "&lt;script&gt;" in page and "<script>" not in page and "@media print" in page


def _evil_file(directory: Path, suffix: str) -> str:
    """The rendered invoice of the cost center whose id is a spreadsheet formula."""
    (match,) = [p for p in directory.iterdir() if p.suffix == suffix and p.name.startswith("2026-01__cmd")]
    return match.read_text()


def test_sums_of_the_largest_amounts_stay_exact(books: sa.Engine) -> None:
    """36-digit amounts at the ledger scale: Decimal's default 28 digits would round their sums."""
    big = Decimal(f"{'1' * (36 - LEDGER_SCALE)}.{'3' * LEDGER_SCALE}")
    rows = [
        ("CC-100", "EC2", str(big), "direct", "tag"),
        ("CC-300", "EC2", str(big), "direct", "tag"),
        ("CC-300", "S3", str(-LEDGER_QUANTUM), "credit", "tag"),
    ]
    ingest_run(books, run_input("2026-01", rows))
    closed = close_period(books, "2026-01", SETTINGS).statement
    expected = Decimal(f"{'2' * (36 - LEDGER_SCALE)}.{'6' * (LEDGER_SCALE - 1)}5")
    assert closed.totals()["USD"]["exact"] == expected
    assert statement(books, "2026-01", SETTINGS).totals()["USD"]["rounded"] == Decimal(
        f"{'2' * (36 - LEDGER_SCALE)}.67"
    )
    # .3333… and .3333…2 round down to .33 each; the residue cent goes to the larger remainder
    assert closed.invoices[0].subtotal == Decimal(f"{'1' * (36 - LEDGER_SCALE)}.34")
