"""One way to write a CSV and one way to read YAML, checked over the product's source, so a
new writer or reader cannot bypass the guards (CR quoted and formulas defused; the
hardened YAML reader's limits); and the tag-compliance CSV, the last writer that did."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from chargeback_engine.compliance import Compliance, Filled, TagReport, Untagged, render_csv
from chargeback_engine.csvwriter import safe_cell
from tests.test_csv_injection import PAYLOADS, assert_safe

REPO = Path(__file__).resolve().parents[2]
PRODUCT = sorted(
    path
    for root in [REPO / "chargeback_engine", *(REPO / "plugins").glob("*/chargeback_*")]
    for path in root.rglob("*.py")
)


def _imports(tree: ast.AST) -> set[str]:
    """Every module a file imports, and every ``module.name`` it imports from one."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def _attributes(tree: ast.AST) -> set[str]:
    return {
        f"{n.value.id}.{n.attr}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }


def test_the_product_is_found() -> None:
    relative = {p.relative_to(REPO).as_posix() for p in PRODUCT}
    assert {"chargeback_engine/csvwriter.py", "chargeback_engine/policy/yaml.py"} <= relative
    assert any(p.startswith("plugins/chargeback-aws/") for p in relative)


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_csv_is_written_and_no_yaml_read_outside_the_one_helper(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    imports, attributes = _imports(tree), _attributes(tree)
    writers = {"csv.writer", "csv.DictWriter", "pyarrow.csv.write_csv", "pyarrow.csv.CSVWriter"}
    used = sorted((imports | attributes | {f"pyarrow.{a}" for a in attributes}) & writers)
    assert not used, f"write CSV through chargeback_engine.csvwriter, not {used}"
    if "COPY " in text and " TO " in text:  # DuckDB's writer: only with every text column defused
        assert "defused(" in text, "a DuckDB COPY TO without csvwriter.defused"
    if path.relative_to(REPO).as_posix() != "chargeback_engine/policy/yaml.py":
        readers = sorted(name for name in imports if name.split(".")[0] in {"yaml", "ruamel"})
        assert not readers, f"read YAML through chargeback_engine.policy.yaml (load_yaml_data), not {readers}"


def test_the_tag_compliance_csv_quotes_line_breaks_and_defuses_formulas() -> None:
    """Tag values, resource ids and owners come from cloud inventories: anyone who can tag."""
    rows = tuple(Compliance(p, "USD", 2, 1, Decimal("-10.5"), Decimal(3)) for p in PAYLOADS)
    report = TagReport(
        "r-1",
        "2026-10",
        ("team",),
        "owner",
        rows[:1],
        rows,
        rows,
        (),
        tuple(Untagged(p, "111", "USD", Decimal(1), 1, ("team",), p) for p in PAYLOADS),
        tuple(Filled(p, "files", p, "USD", 1, Decimal(1)) for p in PAYLOADS),
    )
    cells = [cell for row in assert_safe(render_csv(report)) for cell in row]
    assert all(cells.count(safe_cell(p)) >= 3 for p in PAYLOADS)  # each kept, defused, as key, owner, source
