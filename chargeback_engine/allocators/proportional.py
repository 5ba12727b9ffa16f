"""``proportional``: split by a usage driver or by the targets' own direct cost."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from chargeback_engine.allocators._common import (
    CONDITION,
    COST_CENTER_LIST,
    FALLBACK,
    method_schema,
)
from chargeback_engine.components import (
    AllocationContext,
    Allocator,
    DirectCostBasis,
    Finding,
    Resolution,
    Shares,
    fallback_shares,
)
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.policy.checks import unknown_cost_centers
from chargeback_engine.policy.match import compile_condition


class ProportionalAllocator:
    """Weights recomputed every period: a driver's quantities, or ``basis: direct-cost``.

    ``among`` restricts the targets; ``filter`` (a ``when:`` condition) restricts the driver
    rows or the direct-cost lines that count. All-zero weights take ``fallback``; a driver
    with no rows for the period has no cost centers of its own, so ``even`` then splits among
    ``among`` or, without it, among the consumers (as ``basis: direct-cost`` does).
    """

    name = "proportional"
    compiled = True  # resolve reads nothing of the key but fields(params)
    params_schema = method_schema(
        "proportional",
        {
            "driver": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"},
            "basis": {"const": "direct-cost"},
            "among": COST_CENTER_LIST,
            "filter": CONDITION,
            "fallback": FALLBACK,
        },
        oneOf=[{"required": ["driver"]}, {"required": ["basis"]}],
    )

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return unknown_cost_centers(policy, params.get("among", []), ("among",))  # the kernel checks drivers

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset(params.get("among", []))

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        condition = compile_condition(params["filter"], context.policy.tags) if "filter" in params else None
        fallback = params.get("fallback", "unallocated")
        among = params.get("among")
        if "basis" in params:
            targets = tuple(sorted(among)) if among else None
            return DirectCostBasis(targets, condition, fallback, "proportional to direct cost")
        driver = params["driver"]
        quantities = context.driver(driver, condition)
        candidates = among or sorted(quantities)
        weights = {cc: max(quantities.get(cc, Decimal(0)), Decimal(0)) for cc in candidates}
        if any(weights.values()):
            return Shares({cc: w for cc, w in weights.items() if w}, f"proportional to driver {driver}")
        rows = "rows that match the filter" if condition is not None else "rows"
        if not quantities:
            why = f"driver {driver} has no {rows} for {context.period}"
        elif among:
            why = f"driver {driver} has no positive quantity for {context.period} among {', '.join(among)}"
        else:
            why = f"driver {driver} has no positive quantity for {context.period}"
        return fallback_shares(fallback, candidates or context.consumers(), context, why)


@hookimpl
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    register(ProportionalAllocator())
