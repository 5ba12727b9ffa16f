"""``direct``: everything to one named cost center."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from chargeback_engine.allocators._common import COST_CENTER_ID, method_schema
from chargeback_engine.components import AllocationContext, Allocator, Finding, Shares
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.policy.checks import unknown_cost_centers


class DirectAllocator:
    name = "direct"
    compiled = True  # resolve reads nothing of the key but fields(params)
    params_schema = method_schema("direct", {"cost_center": COST_CENTER_ID}, required=["cost_center"])

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return unknown_cost_centers(policy, params["cost_center"], ("cost_center",))

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset({params["cost_center"]})

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Shares:
        return Shares({params["cost_center"]: Decimal(1)}, f"direct to {params['cost_center']}")


@hookimpl
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    register(DirectAllocator())
