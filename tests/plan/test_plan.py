"""``chargeback plan`` on the bundled acme policy and a proposed change to it."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine import Engine
from chargeback_engine.cli import main
from chargeback_engine.errors import PeriodError
from chargeback_engine.policy_plan import plan

POLICIES = Path(__file__).parents[2] / "policies"
BASE = POLICIES / "acme.yaml"
SAMPLE = POLICIES / "data" / "acme-focus-2026-10.csv"

#: The proposal: credits go to Finance IT instead of everyone, and sandbox resources to Growth.
CHANGES = [
    ('version: "2026.10.1"', 'version: "2026.10.2"'),
    (
        "      when: {ChargeCategory: Credit}\n      allocate: {method: even}",
        "      when: {ChargeCategory: Credit}\n      allocate: {method: direct, cost_center: CC-1009}",
    ),
    (
        "    - id: platform\n",
        (
            "    - id: sandbox\n      priority: 95\n      when: {tags.environment: sandbox}\n"
            "      allocate: {method: direct, cost_center: CC-1010}\n    - id: platform\n"
        ),
    ),
]


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("head")
    shutil.copytree(POLICIES / "drivers", folder / "drivers")
    text = BASE.read_text(encoding="utf-8")
    for old, new in CHANGES:
        assert old in text
        text = text.replace(old, new)
    (folder / "acme.yaml").write_text(text, encoding="utf-8")
    return folder / "acme.yaml"


@pytest.fixture(scope="module")
def change(head: Path):  # type: ignore[no-untyped-def]
    return plan(BASE, head, [SAMPLE], "2026-10")


def test_the_plan_names_both_policies_and_the_period(change):
    assert (change.base.version, change.head.version) == ("2026.10.1", "2026.10.2")
    assert change.base.hash != change.head.hash
    assert str(change.period) == "2026-10" and change.input_rows == 600


def test_before_and_after_are_the_two_runs_exactly(change, head):
    before = {cc: amount for cc, _, amount in Engine(BASE).run([str(SAMPLE)], "2026-10").summary()}
    after = {cc: amount for cc, _, amount in Engine(head).run([str(SAMPLE)], "2026-10").summary()}
    assert {c.cost_center: c.before for c in change.cost_centers} == before
    assert {c.cost_center: c.after for c in change.cost_centers} == after
    assert sum(c.delta for c in change.cost_centers) == 0  # a policy change moves money, never makes or loses it


def test_the_rules_whose_matched_amount_changed(change):
    rules = {r.rule_id: r for r in change.rules}
    sandbox = rules["sandbox"]
    assert (sandbox.lines_before, sandbox.before) == (0, Decimal(0))
    assert sandbox.lines_after > 0 and sandbox.after > 0
    # The lines the new rule took came from the rules that matched them before.
    stage_zero = [r for r in change.rules if not r.rule_id.startswith("stage-")]
    assert sum(r.lines_after - r.lines_before for r in stage_zero) == 0
    assert sum(r.delta for r in stage_zero) == 0
    assert "credits" not in rules  # same lines, same amount: only where it goes changed
    assert all(r.delta or r.lines_before != r.lines_after for r in change.rules)


def test_markdown_is_a_pull_request_comment(change):
    text = change.to_markdown()
    assert text.startswith("### Allocation impact for 2026-10\n\n`acme@2026.10.1` → `acme@2026.10.2`, 600 line items.")
    cc_1009 = next(c for c in change.cost_centers if c.cost_center == "CC-1009")
    assert cc_1009.delta < 0
    assert any(line.startswith("| **CC-1009 Finance IT** | USD |") for line in text.splitlines())  # names beside ids
    assert "| `sandbox` | USD | 0 |" in text
    total = next(line for line in text.splitlines() if line.startswith("| **Total** | USD |"))
    assert total.endswith("| 0.00 |")


def test_json_keeps_amounts_exact(change):
    document = json.loads(json.dumps(change.to_json()))
    assert document["changed"] is True
    exact = {c["cost_center"]: Decimal(c["delta"]) for c in document["cost_centers"]}
    assert exact == {c.cost_center: c.delta for c in change.cost_centers}
    assert {r["rule_id"] for r in document["rules"]} == {r.rule_id for r in change.rules}


def test_the_same_policy_changes_nothing():
    same = plan(BASE, BASE, [SAMPLE], "2026-10")
    assert not same.changed and same.rules == ()
    assert same.to_markdown().endswith("No cost center and no rule changes.\n")


def test_cli_prints_markdown_or_json(head):
    runner = CliRunner()
    args = ["plan", "--base", str(BASE), "--head", str(head), "--input", str(SAMPLE), "--period", "2026-10"]
    markdown = runner.invoke(main, args)
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output.startswith("### Allocation impact for 2026-10")
    as_json = runner.invoke(main, [*args, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["head"]["version"] == "2026.10.2"


def test_a_period_no_policy_covers_is_an_error(head):
    with pytest.raises(PeriodError):
        plan(BASE, head, [SAMPLE], "2025-01")
    result = CliRunner().invoke(
        main, ["plan", "--base", str(BASE), "--head", str(head), "--input", str(SAMPLE), "--period", "2025-01"]
    )
    assert result.exit_code == 1
    assert "no policy is effective for period 2025-01" in result.output
