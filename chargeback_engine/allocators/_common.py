"""Helpers the built-in allocators share: schema fragments and cost-center checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
