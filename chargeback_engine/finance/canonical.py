"""Canonical JSON and content hashes: the one way finance derives ids from content."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from chargeback_engine.money import minor_units, quantum


def money_text(amount: Decimal) -> str:
    """Plain positional notation (never an exponent), so text and hashes are stable."""
    return format(amount, "f")


def minor(amount: Decimal, currency: str) -> str:
    """An amount written with exactly the currency's minor-unit digits (JPY 0, USD 2, KWD 3)."""
    return money_text(amount.quantize(quantum(minor_units(currency))))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money_text(value)
    raise TypeError(f"{type(value).__name__} is not canonical JSON")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def content_id(prefix: str, value: Any, length: int = 24) -> str:
    """A short, prefixed SHA-256 of the canonical JSON of ``value`` (e.g. ``inv-3f2a…``)."""
    digest = hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:length]}"


def sha256_text(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
