"""Helpers the built-in allocators share: schema fragments, cost-center checks, fallbacks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from chargeback_engine.components import AllocationContext, Shares
from chargeback_engine.policy.schema import ALLOCATE_REF, COST_CENTER_ID_REF

COST_CENTER_ID = dict(COST_CENTER_ID_REF)
COST_CENTER_LIST = {"type": "array", "items": COST_CENTER_ID, "minItems": 1, "maxItems": 1000, "uniqueItems": True}
#: A nested ``allocate:`` block; the kernel assembles every method's fragment under ``$defs``.
NESTED_ALLOCATE = dict(ALLOCATE_REF)
FALLBACK = {"enum": ["even", "unallocated"]}
#: A match condition in the rules' ``when:`` language.
CONDITION = {"$ref": "#/$defs/when"}


def method_schema(
    method: str, properties: Mapping[str, Any], required: Iterable[str] = (), **extra: Any
) -> Mapping[str, Any]:
    """The ``allocate:`` block of one method: ``method`` pinned, nothing unknown allowed."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["method", *required],
        "properties": {"method": {"const": method}, **properties},
        **extra,
    }


def fallback_shares(fallback: str, among: Iterable[str], context: AllocationContext, why: str) -> Shares:
    """All weights were zero: split evenly among the candidates, or park in the unallocated bucket.

    The reason says what happened (``why``), which fallback was declared, and what it did.
    """
    candidates = sorted(set(among))
    if fallback == "even" and candidates:
        return Shares(
            {cc: Decimal(1) for cc in candidates},
            f"{why} (fallback: even, among {len(candidates)} cost centers), fell back to even split",
        )
    declared = "fallback: unallocated" if fallback != "even" else "fallback: even, but no cost center to split among"
    return Shares({context.policy.unallocated: Decimal(1)}, f"{why} ({declared}), fell back to unallocated")
