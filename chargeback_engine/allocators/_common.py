"""Helpers the built-in allocators share: schema fragments, cost-center checks, fallbacks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from chargeback_engine.components import AllocationContext, Finding, JsonPath, Shares

COST_CENTER_ID = {"type": "string", "minLength": 1, "maxLength": 64}
COST_CENTER_LIST = {"type": "array", "items": COST_CENTER_ID, "minItems": 1, "maxItems": 1000, "uniqueItems": True}
#: A nested ``allocate:`` block; the kernel assembles every method's fragment under ``$defs``.
NESTED_ALLOCATE = {"$ref": "#/$defs/allocate"}
FALLBACK = {"enum": ["even", "unallocated"]}
#: A match condition in the rules' ``when:`` language; compiled (and so checked) by the engine.
CONDITION = {"type": "object", "minProperties": 1, "maxProperties": 50}


def method_schema(method: str, properties: Mapping[str, Any], required: Iterable[str] = (), **extra: Any) -> dict[str, Any]:
    """The ``allocate:`` block of one method: ``method`` pinned, nothing unknown allowed."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["method", *required],
        "properties": {"method": {"const": method}, **properties},
        **extra,
    }


def cost_center_ids(policy: Any) -> set[str]:
    """Declared cost-center ids plus the unallocated bucket, from a Policy or a document."""
    if isinstance(policy, Mapping):
        spec = policy.get("spec", {})
        return {cc["id"] for cc in spec.get("cost_centers", [])} | {spec.get("unallocated", "UNALLOCATED")}
    return {cc.id for cc in policy.cost_centers} | {policy.unallocated}


def driver_ids(policy: Any) -> set[str]:
    if isinstance(policy, Mapping):
        return set(policy.get("spec", {}).get("drivers", {}))
    return {d.id for d in policy.drivers}


def unknown_cost_centers(names: Iterable[tuple[JsonPath, str]], policy: Any) -> list[Finding]:
    known = cost_center_ids(policy)
    return [Finding(path, f"unknown cost center {name!r}") for path, name in names if name not in known]


def fallback_shares(fallback: str, among: Iterable[str], context: AllocationContext, why: str) -> Shares:
    """All weights were zero: split evenly among the candidates, or park in the unallocated bucket."""
    candidates = sorted(set(among))
    if fallback == "even" and candidates:
        return Shares({cc: Decimal(1) for cc in candidates}, f"{why}, fell back to even split")
    return Shares({context.policy.unallocated: Decimal(1)}, f"{why}, fell back to unallocated")
