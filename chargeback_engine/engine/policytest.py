"""Policy tests: ``<policy>_test.yaml`` beside each policy, line items in, totals out.

A test file holds ``cases``; each case names its ``period`` (default: the policy's first
month), its ``line_items`` (FOCUS columns, money as text, ``Tags`` as a mapping) and the
``expect``-ed amount per cost center for that period. A cost center that is not listed
must receive nothing. The real engine runs every case, so a test proves the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pluggy

from chargeback_engine.engine.items import build_line_items
from chargeback_engine.engine.runner import Engine
from chargeback_engine.errors import ChargebackError, PeriodError
from chargeback_engine.periods import Period
from chargeback_engine.plugins import get_plugin_manager
from chargeback_engine.policy.loader import (
    POLICY_TEST_SUFFIX,
    policy_files,
)
from chargeback_engine.policy.yaml import JsonPath, YamlDocument, load_yaml_document


@dataclass(frozen=True)
class CaseResult:
    test_file: str
    name: str
    passed: bool
    messages: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.test_file,
            "case": self.name,
            "status": "PASS" if self.passed else "FAIL",
            "messages": list(self.messages),
        }


def test_files(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(policy, test file) pairs for every policy under ``paths`` that has a test beside it."""
    pairs = []
    for policy in policy_files(paths):
        test = policy.with_name(policy.stem + POLICY_TEST_SUFFIX)
        if test.exists():
            pairs.append((policy, test))
    return pairs


def run_policy_tests(paths: Iterable[str | Path], plugins: pluggy.PluginManager | None = None) -> list[CaseResult]:
    """Every case of every test file under ``paths``, run by an engine with ``plugins``
    (default: every installed plugin), whose observer hooks see each case's run."""
    plugins = get_plugin_manager() if plugins is None else plugins
    results: list[CaseResult] = []
    for policy_path, test_path in test_files(paths):
        engine = Engine([policy_path], plugins)
        policy = engine.policies.policies[0]
        document = load_yaml_document(test_path)
        for index, case in enumerate(_cases(document), start=1):
            name = str(case.get("name", f"case {index}"))
            try:
                messages = _run_case(
                    engine,
                    policy.currency,
                    case,
                    document,
                    ("cases", index - 1),
                    str(case.get("period", Period.of(policy.effective_from))),
                )
            except ChargebackError as exc:
                messages = [f"error: {exc}"]
            results.append(CaseResult(str(test_path), name, not messages, tuple(messages)))
    return results


def _cases(document: YamlDocument) -> list[Mapping[str, Any]]:
    expected = "expected a mapping with 'cases', a list of mappings"
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise document.error((), expected)
    cases = data.get("cases", [])
    if not isinstance(cases, list):
        raise document.error(("cases",), expected)
    for index, case in enumerate(cases):
        if not isinstance(case, dict):
            raise document.error(("cases", index), expected)
    return cases


def _run_case(
    engine: Engine, currency: str, case: Mapping[str, Any], document: YamlDocument, at: JsonPath, period_text: str
) -> list[str]:
    """One case's failures (none when it passes); a case that cannot run is an error located at its value."""
    try:
        period = Period.parse(period_text)
    except PeriodError as exc:
        raise document.error((*at, "period"), str(exc)) from None
    expect = case.get("expect") or {}
    if not isinstance(expect, dict):
        raise document.error((*at, "expect"), "expected a mapping of cost center to amount")
    expected = {str(cc): _amount(v, document, (*at, "expect", cc)) for cc, v in expect.items()}
    items = build_line_items(case.get("line_items", []), period, source_id=document.file, currency=currency)
    result = engine.run([items], period)
    actual: dict[str, Decimal] = {}
    for cost_center, _, amount in result.summary():
        actual[cost_center] = actual.get(cost_center, Decimal(0)) + amount
    messages = []
    for cost_center in sorted(set(actual) | set(expected)):
        want, got = expected.get(cost_center, Decimal(0)), actual.get(cost_center, Decimal(0))
        if want != got:
            messages.append(f"{cost_center}: expected {want}, got {got}")
    return messages


def _amount(value: Any, document: YamlDocument, at: JsonPath) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise document.error(at, f"expected amount {value!r} is not a number") from None
