"""Canonical JSON and SHA-256 digests: the one way content becomes a hash or an id.

Canonical JSON has sorted keys, no spaces and UTF-8 text, so equal content hashes alike.
Numbers follow one of two rules, each fixed by the hashes already recorded with it:

- ``"exact"`` (policies): every number in its shortest exact decimal form, never via a
  float, so ``0.40`` and ``0.4`` hash alike; any other value is written as its text.
- ``"text"`` (finance ids and content hashes): a :class:`~decimal.Decimal` is a JSON string
  in plain positional notation, its digits as written (``"0.40"``); any value that is not
  JSON is an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

NumberRule = Literal["exact", "text"]


def canonical_json(value: Any, numbers: NumberRule = "exact") -> str:
    """``value`` as canonical JSON, its numbers written by the rule ``numbers`` names."""
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(_string(k) + ":" + canonical_json(v, numbers) for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v, numbers) for v in value) + "]"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return _string(value)
    if numbers == "text":
        if isinstance(value, Decimal):
            return _string(format(value, "f"))
        if isinstance(value, (int, float)):
            return json.dumps(value)
        raise TypeError(f"{type(value).__name__} is not canonical JSON")
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(value if not isinstance(value, float) else repr(value)).normalize()
        return format(number, "f") if number else "0"
    return _string(str(value))


def key_json(value: Mapping[str, Any]) -> str:
    """:func:`canonical_json` of a mapping whose values are text (a match key, a tag set), at
    the speed of :func:`json.dumps`, which the engine needs once per distinct key."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _string(value: str | bool | None) -> str:
    return json.dumps(value, ensure_ascii=False)


def sha256_hex(text: str) -> str:
    """The hex SHA-256 of ``text`` as UTF-8; ids take a prefix of it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_text(text: str) -> str:
    """``sha256:`` and the hex digest of ``text``: a content hash as runs and policies record it."""
    return "sha256:" + sha256_hex(text)


def content_id(prefix: str, value: Any, length: int = 24) -> str:
    """A short, prefixed SHA-256 of the canonical JSON (finance numbers) of ``value`` (``inv-3f2a…``)."""
    return f"{prefix}-{sha256_hex(canonical_json(value, 'text'))[:length]}"
