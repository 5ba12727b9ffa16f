"""The built-in allocators' own checks, run and located by the kernel's validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chargeback_engine import validate
from chargeback_engine.plugins import Registry

Write = Callable[..., Path]

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: builtin, version: "1"}
spec:
  currency: USD
  cost_centers:
    - {id: CC-1, name: One}
    - {id: CC-2, name: Two}
    - {id: CC-3, name: Three}
  rules:
    - id: only
      priority: 1
      allocate: ALLOCATE
"""


def check(write: Write, registry: Registry, allocate: str) -> list[str]:
    path = write(POLICY.replace("ALLOCATE", allocate))
    return [str(d).removeprefix(f"{path}:") for d in validate([path], registry)]


@pytest.mark.parametrize(
    "splits",
    [
        "{CC-1: 0.1, CC-2: 0.2, CC-3: 0.7}",  # 1 exactly as decimals; 0.1 + 0.2 + 0.7 != 1 as floats
        "{CC-1: 0.3333333333, CC-2: 0.3333333333, CC-3: 0.3333333334}",
        "{CC-1: 1}",
    ],
)
def test_fixed_splits_summing_to_exactly_one_are_valid(write: Write, builtin_registry: Registry, splits: str) -> None:
    assert check(write, builtin_registry, f"{{method: fixed, splits: {splits}}}") == []


@pytest.mark.parametrize(
    ("splits", "total"),
    [
        ("{CC-1: 0.3333333333, CC-2: 0.3333333333, CC-3: 0.3333333333}", "0.9999999999"),
        ("{CC-1: 0.5, CC-2: 0.5000000001}", "1.0000000001"),
    ],
)
def test_fixed_splits_not_summing_to_one_are_located(
    write: Write, builtin_registry: Registry, splits: str, total: str
) -> None:
    (message,) = check(write, builtin_registry, f"{{method: fixed, splits: {splits}}}")
    assert message.startswith("13:41: $.spec.rules[0].allocate.splits: ")
    assert f"sum to {total}, not exactly 1" in message


def test_fixed_splits_naming_an_unknown_cost_center(write: Write, builtin_registry: Registry) -> None:
    (message,) = check(write, builtin_registry, "{method: fixed, splits: {CC-1: 0.5, CC-7: 0.5}}")
    assert message.startswith("13:59: $.spec.rules[0].allocate.splits.CC-7: unknown cost center 'CC-7'")


def test_even_among_naming_an_unknown_cost_center(write: Write, builtin_registry: Registry) -> None:
    (message,) = check(write, builtin_registry, "{method: even, among: [CC-1, CC-9, CC-2]}")
    assert message.startswith("13:46: $.spec.rules[0].allocate.among[1]: unknown cost center 'CC-9'")


def test_checks_reach_blocks_nested_in_builtin_methods(write: Write, builtin_registry: Registry) -> None:
    nested = "{method: amortized, months: 12, then: {method: even, among: [CC-1, CC-4]}}"
    (message,) = check(write, builtin_registry, nested)
    assert message.startswith("13:84: $.spec.rules[0].allocate.then.among[1]: unknown cost center 'CC-4'")
