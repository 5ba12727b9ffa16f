"""``chargeback explain-policy``: the methodology a finance lead signs, written from the policy."""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.plugins import build_registry, get_plugin_manager
from chargeback_engine.policy.loader import load_policies

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "policies" / "acme.yaml"
REGISTRY = build_registry(get_plugin_manager())
SAMPLE = ROOT / "policies" / "data" / "acme-focus-2026-10.csv"


def invoke(*args: str | Path) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def sections(markdown: str) -> dict[str, str]:
    """Each ``### ...`` heading with the text under it."""
    parts = re.split(r"^### (.+)$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_rule_in_order_with_what_it_matches_how_it_splits_and_a_worked_example() -> None:
    [policy] = load_policies([ACME], REGISTRY).policies
    document = invoke("explain-policy", ACME)
    found = sections(document)
    expected = [f"{n}. Rule `{rule.id}` (priority {rule.priority})" for n, rule in enumerate(policy.rules, start=1)]
    assert [h for h in found if h.split(". ", 1)[-1].startswith("Rule")] == expected  # every rule, in order
    for heading in expected:
        body = found[heading]
        assert "**Matches** " in body and "**Splits** " in body and "**Worked example:** " in body, heading
    assert found[expected[0]].count("1,000.00 USD") >= 2
    stages = [h for h in found if h.startswith("Stage ")]
    assert stages == ["Stage 1: pool `CC-9001` (Shared Services)", "Stage 2: pool `CC-9000` (Platform)"]
    assert f"version `{policy.version}`" in document and policy.content_hash in document
    assert "## Rounding" in document and "largest-remainder" in document


def test_the_worked_example_is_the_engines_split() -> None:
    observability = sections(invoke("explain-policy", ACME))["6. Rule `observability` (priority 60)"]
    example = observability.split("**Worked example:** ", 1)[1]
    amounts = [Decimal(a.replace(",", "")) for a in re.findall(r"([\d,]+\.\d\d) USD", example)]
    assert amounts[1:] == [Decimal("500.00"), Decimal("300.00"), Decimal("200.00")] and sum(amounts[1:]) == amounts[0]


class Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.h3: list[str] = []
        self._in = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h3":
            self._in = True
            self.h3.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = self._in and tag != "h3"

    def handle_data(self, data: str) -> None:
        if self._in:
            self.h3[-1] += data


def test_html_to_print_escapes_what_the_policy_says(tmp_path: Path) -> None:
    policy = tmp_path / "acme.yaml"
    text = ACME.read_text(encoding="utf-8").replace(
        "description: Promotional credits benefit everyone equally.",
        'description: "Credits <script>alert(1)</script> & promotions"',
    )
    policy.write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "policies" / "drivers", tmp_path / "drivers")
    page = invoke("explain-policy", policy, "--format", "html")
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page
    assert "Credits &lt;script&gt;alert(1)&lt;/script&gt; &amp; promotions" in page
    headings = Headings()
    headings.feed(page)
    [loaded] = load_policies([policy], REGISTRY).policies
    assert [h for h in headings.h3 if ". Rule " in h] == [
        f"{n}. Rule {rule.id} (priority {rule.priority})" for n, rule in enumerate(loaded.rules, start=1)
    ]


def test_plan_shows_how_the_methodology_changes(tmp_path: Path) -> None:
    head = tmp_path / "acme.yaml"
    head.write_text(
        ACME.read_text(encoding="utf-8").replace("CC-1004: 0.5, CC-1008: 0.3", "CC-1004: 0.6, CC-1008: 0.2"),
        encoding="utf-8",
    )
    shutil.copytree(ROOT / "policies" / "drivers", tmp_path / "drivers")
    comment = invoke("plan", "--base", ACME, "--head", head, "--input", SAMPLE, "--period", "2026-10", "--methodology")
    diff = comment.split("#### Methodology changes", 1)[1]
    assert "-**Splits** by a fixed agreement: `CC-1004` (Data Platform) 50.0%" in diff
    assert "+**Worked example:** a 1,000.00 USD line gives `CC-1004` 600.00 USD" in diff
