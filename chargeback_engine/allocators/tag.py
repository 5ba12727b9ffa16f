"""``tag``: the cost center comes from the first tag present in a key hierarchy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from chargeback_engine.allocators._common import COST_CENTER_ID, method_schema
from chargeback_engine.components import AllocationContext, Allocator, Finding, Shares
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.policy.checks import known_cost_centers, unknown_cost_centers
from chargeback_engine.policy.match import TAG_PREFIX


class TagAllocator:
    """Walks ``keys`` in order; the first tag present (after normalisation) names the cost
    center, through ``map`` when given. A value that is no known cost center is skipped
    like a missing tag; when nothing fits, ``fallback`` (default: the unallocated bucket)."""

    name = "tag"
    compiled = True  # resolve reads nothing of the key but fields(params)
    params_schema = method_schema(
        "tag",
        {
            "keys": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 128},
                "minItems": 1,
                "maxItems": 20,
            },
            "map": {"type": "object", "additionalProperties": COST_CENTER_ID, "maxProperties": 10000},
            "fallback": COST_CENTER_ID,
        },
        required=["keys"],
    )

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Mapping[str, Any], dict[str, str], frozenset[str]]] = {}

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        findings = [
            f for value, cc in params.get("map", {}).items() for f in unknown_cost_centers(policy, cc, ("map", value))
        ]
        if "fallback" in params:
            findings += unknown_cost_centers(policy, params["fallback"], ("fallback",))
        return findings

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset(params.get("map", {}).values()) | ({params["fallback"]} if "fallback" in params else set())

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset(TAG_PREFIX + k for k in params["keys"])

    def _prepared(self, params: Mapping[str, Any], policy: Any) -> tuple[dict[str, str], frozenset[str]]:
        """The normalised value map and the known cost centers, once per block (resolve runs per key)."""
        cached = self._cache.get(id(params))
        if cached is None or cached[0] is not params:
            mapping = {policy.tags.normalize_value(str(k)): v for k, v in params.get("map", {}).items()}
            cached = self._cache[id(params)] = (params, mapping, known_cost_centers(policy))
        return cached[1], cached[2]

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Shares:
        tags = context.policy.tags
        mapping, known = self._prepared(params, context.policy)
        skipped: list[str] = []
        for key in params["keys"]:
            value = context.key.get(TAG_PREFIX + tags.normalize_key(key))
            if value is None:
                skipped.append(f"tag {key} missing")
                continue
            cost_center = mapping.get(value, value)
            if cost_center not in known:
                skipped.append(f"tag {key} value {value!r} is not a cost center")
                continue
            reason = f"tag {key} = {value!r}"
            return Shares(
                {cost_center: Decimal(1)}, ", ".join([*skipped, f"fell back to {key}"]) if skipped else reason
            )
        fallback = params.get("fallback", context.policy.unallocated)
        return Shares({fallback: Decimal(1)}, ", ".join([*skipped, f"fell back to {fallback}"]))


@hookimpl
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    register(TagAllocator())
