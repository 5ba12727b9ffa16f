"""``fixed``: declared fractions that sum to exactly 1."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from typing import Any

from chargeback_engine.allocators._common import COST_CENTER_ID, method_schema
from chargeback_engine.components import AllocationContext, Allocator, Finding, Shares
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.policy.checks import unknown_cost_centers

FRACTION = {
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "string", "pattern": r"^(0(\.[0-9]{1,10})?|1(\.0{1,10})?)$"},
    ]
}


def fraction(value: Any) -> Decimal:
    """YAML numbers arrive as floats; their shortest repr is what the author wrote."""
    return Decimal(str(value))


def exact_sum(values: list[Decimal]) -> Decimal:
    """The sum with every digit: Decimal's default 28-digit context would round
    0.5000000000000000000000000001 + 0.5 to exactly 1."""
    if not values:
        return Decimal(0)
    exponents = [e for v in values if isinstance(e := v.as_tuple().exponent, int)]
    if len(exponents) < len(values):
        raise InvalidOperation("not a finite number")
    top = max(v.adjusted() for v in values if v) if any(values) else 0
    with localcontext() as context:
        context.prec = max(top - min(exponents), 0) + len(str(len(values))) + 2
        context.traps[Inexact] = True  # never round silently, even if the estimate were short
        return sum(values, Decimal(0))


class FixedAllocator:
    name = "fixed"
    compiled = True  # resolve reads nothing of the key but fields(params)
    params_schema = method_schema(
        "fixed",
        {
            "splits": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1000,
                "propertyNames": COST_CENTER_ID,
                "additionalProperties": FRACTION,
            }
        },
        required=["splits"],
    )

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        splits = params["splits"]
        findings = unknown_cost_centers(policy, splits, ("splits",))
        try:
            total = exact_sum([fraction(v) for v in splits.values()])
        except InvalidOperation:
            return [*findings, Finding(("splits",), "every fraction must be a decimal number")]
        if total != 1:
            findings.append(Finding(("splits",), f"fractions sum to {total}, not exactly 1"))
        return findings

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset(params["splits"])

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Shares:
        weights = {cc: fraction(v) for cc, v in params["splits"].items() if fraction(v)}
        return Shares(weights, "fixed split")


@hookimpl
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    register(FixedAllocator())
