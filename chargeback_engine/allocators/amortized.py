"""``amortized``: spread a one-time charge over months, each month split by ``then``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chargeback_engine.allocators._common import NESTED_ALLOCATE, method_schema
from chargeback_engine.components import AllocationContext, Allocator, Amortize, Finding
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.policy.policy_model import AllocationSpec

COMMITMENT_TERM = "commitment-term"


class AmortizedAllocator:
    """``months: N`` spreads over N months from the line's charge period; ``months:
    commitment-term`` over ChargePeriodStart to ChargePeriodEnd. The parts of later months
    are output as the amortization schedule."""

    name = "amortized"
    compiled = True  # resolve reads nothing of the key but fields(params)
    params_schema = method_schema(
        "amortized",
        {
            "months": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 120}, {"const": COMMITMENT_TERM}]},
            "then": NESTED_ALLOCATE,
        },
        required=["months", "then"],
    )

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return []

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset()

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Amortize:
        months = params["months"]
        then = context.resolve(AllocationSpec.from_document(params["then"]))
        over = "the commitment term" if months == COMMITMENT_TERM else f"{months} months"
        return Amortize(
            None if months == COMMITMENT_TERM else int(months), then, f"amortized over {over}, then {then.reason}"
        )


@hookimpl
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    register(AmortizedAllocator())
