"""``even``: equal shares among the listed cost centers, or among all consumers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from chargeback_engine.allocators._common import COST_CENTER_LIST, method_schema
from chargeback_engine.components import AllocationContext, Allocator, Finding, Shares
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.policy.checks import unknown_cost_centers


class EvenAllocator:
    name = "even"
    compiled = True  # resolve reads nothing of the key but fields(params)
    params_schema = method_schema("even", {"among": COST_CENTER_LIST})

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return unknown_cost_centers(policy, params.get("among", []), ("among",))

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset(params.get("among", []))

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Shares:
        if "among" in params:
            return Shares({cc: Decimal(1) for cc in params["among"]}, "even among listed cost centers")
        consumers = context.consumers()
        if not consumers:
            return Shares({context.policy.unallocated: Decimal(1)}, "no consumers, fell back to unallocated")
        return Shares({cc: Decimal(1) for cc in consumers}, "even among all consumers")


@hookimpl
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    register(EvenAllocator())
