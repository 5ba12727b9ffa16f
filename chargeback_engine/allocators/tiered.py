"""``tiered``: classify by a column or tag into tiers, each allocated by its own method."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from chargeback_engine.allocators._common import NESTED_ALLOCATE, method_schema
from chargeback_engine.components import AllocationContext, Allocator, Finding, Resolution, Shares
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.policy.match import TAG_PREFIX
from chargeback_engine.policy.policy_model import AllocationSpec


class TieredAllocator:
    """``by`` names a FOCUS column or ``tags.<key>``; ``tiers`` maps its value to an
    ``allocate:`` block; ``default`` (else the unallocated bucket) takes everything else."""

    name = "tiered"
    compiled = True  # resolve reads nothing of the key but fields(params)
    params_schema = method_schema(
        "tiered",
        {
            "by": {"type": "string", "minLength": 1, "maxLength": 128},
            "tiers": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 100,
                "additionalProperties": NESTED_ALLOCATE,
            },
            "default": NESTED_ALLOCATE,
        },
        required=["by", "tiers"],
    )

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return []  # nested blocks are checked by their own methods, through the kernel

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset()  # the kernel collects targets of nested blocks itself

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset({params["by"]})

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        by = params["by"]
        if by.startswith(TAG_PREFIX):
            tags = context.policy.tags
            value = context.key.get(TAG_PREFIX + tags.normalize_key(by[len(TAG_PREFIX) :]))
            tiers = {tags.normalize_value(str(k)): v for k, v in params["tiers"].items()}
        else:
            value = context.key.get(by)
            tiers = {str(k): v for k, v in params["tiers"].items()}
        if value in tiers:
            return _annotated(context.resolve(AllocationSpec.from_document(tiers[value])), f"tier {value}")
        what = f"{by} missing" if value is None else f"{by} {value!r} has no tier"
        if "default" in params:
            return _annotated(context.resolve(AllocationSpec.from_document(params["default"])), f"{what}, default tier")
        return Shares({context.policy.unallocated: Decimal(1)}, f"{what} and there is no default tier")


def _annotated(resolution: Resolution, prefix: str) -> Resolution:
    return replace(resolution, reason=f"{prefix}: {resolution.reason}")


@hookimpl
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    register(TieredAllocator())
