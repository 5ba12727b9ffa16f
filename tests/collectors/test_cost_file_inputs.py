"""Cost files end to end through ``chargeback run``: providers' FOCUS 1.2 exports with 15-digit
costs allocate to the exact sum of their input, digit for digit, and every hostile file of
tests/hostile/inputs ends as its table says, with a located message and no traceback."""

from __future__ import annotations

import csv
import re
from decimal import Context, Decimal, localcontext
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.collectors.focus_files import FocusFilesCollector
from chargeback_engine.periods import Period
from tests.docs.sessions import checked

HERE = Path(__file__).parent
HOSTILE = HERE.parent / "hostile" / "inputs"
EXPORTS = sorted((HERE / "data").glob("focus-1.2-*.csv"))
WIDE = Context(prec=80)

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: precision, version: "1", effective: {from: 2026-01-01}}
spec:
  currency: %s
  cost_centers:
    - {id: CC-WEB, name: Web}
    - {id: CC-SHARED, name: Shared}
  rules:
    - id: by-team
      priority: 100
      when: {tags.team: {exists: true}}
      allocate: {method: tag, keys: [team], map: {web: CC-WEB}, fallback: CC-SHARED}
"""


def run(tmp_path: Path, data: Path, currency: str = "USD"):  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY % currency)
    return CliRunner().invoke(
        main,
        ["run", "--policy", str(policy), "--input", str(data), "--period", "2026-10", "--out", str(tmp_path / "out")],
    )


def exact_sum(path: Path, column: str) -> Decimal:
    with path.open(newline="") as f, localcontext(WIDE):
        return sum((Decimal(row[column]) for row in csv.DictReader(f) if row[column]), Decimal(0))


@pytest.mark.parametrize("export", EXPORTS, ids=lambda p: p.stem)
def test_a_providers_focus_export_allocates_its_exact_sum(tmp_path, export):
    with export.open(newline="") as f:
        header = next(csv.reader(f))
        currency = next(csv.DictReader(export.open(newline="")))["BillingCurrency"]
    assert len([c for c in header if not c.startswith("x_")]) == 57  # every FOCUS 1.2 column
    result = run(tmp_path, export, currency)
    assert result.exit_code == 0, result.output
    with (tmp_path / "out" / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    amount = next(c for c in rows[0] if c in ("amount", "Amount"))
    with localcontext(WIDE):
        allocated = sum((Decimal(r[amount]) for r in rows), Decimal(0))
    assert allocated == exact_sum(export, "EffectiveCost")
    [source] = FocusFilesCollector().collect({"path": str(export)}, Period(2026, 10))
    assert source.details["rounding"] == {}  # 15 digits are kept as written
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        with localcontext(WIDE):
            assert sum(source.table[column].to_pylist(), Decimal(0)) == exact_sum(export, column)


with (HOSTILE / "expected.csv").open(newline="", encoding="utf-8") as _table:
    CASES = list(csv.DictReader(_table))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["file"])
def test_every_hostile_cost_file_ends_as_its_table_says(tmp_path, case):
    path = HOSTILE / case["file"]
    result = run(tmp_path, path)
    assert "Traceback" not in result.output
    assert result.exit_code == int(case["exit"]), result.output
    if case["message"]:
        assert case["message"].replace("{path}", str(path)) in result.output
        assert not (tmp_path / "out").exists()


def test_the_documented_messages_are_the_corpus_messages():
    """docs/reading-cost-files.md's table of messages is expected.csv's, each way round.

    The page shows a file as ``a.csv`` (``{path}`` here) and may leave text out as ``…``.
    """
    [table] = checked("docs/reading-cost-files.md", "tests/collectors/test_cost_file_inputs.py")
    documented = [row.split(" | ")[-1].strip(" |`") for row in table.splitlines()[2:]]
    patterns = [
        re.compile(".*?".join(map(re.escape, re.sub(r"^a\.csv(\.gz)?:", "{path}:", message).split("…"))))
        for message in documented
    ]
    real = [case["message"] for case in CASES if case["message"]]
    assert [m for m, p in zip(documented, patterns) if not any(p.fullmatch(r) for r in real)] == []
    assert [r for r in real if not any(p.fullmatch(r) for p in patterns)] == []


@pytest.mark.parametrize(
    ("name", "values", "residue"),
    [("cost-1e-21.csv", 1, "0.000000000000000000001"), ("cost-20-decimals.csv", 2, "0.000000000000000001")],
)
def test_digits_beyond_the_ledger_are_rounded_half_to_even_and_the_residue_recorded(name, values, residue):
    [source] = FocusFilesCollector().collect({"path": str(HOSTILE / name)}, Period(2026, 10))
    assert source.details["rounding"]["BilledCost"] == {"values": values, "residue": residue}
