"""Builders for engine tests: policies from dicts and FOCUS line items from rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from chargeback_engine.engine.items import build_line_items
from chargeback_engine.periods import Period
from chargeback_engine.policy.build import build_policy
from chargeback_engine.policy.policy_model import Policy, SourceLocation


def make_policy(spec: Mapping[str, Any], *, version: str = "1", path: str = "test.yaml") -> Policy:
    document = {
        "apiVersion": "chargeback/v1",
        "kind": "AllocationPolicy",
        "metadata": {"name": "test", "version": version, "effective": {"from": "2020-01-01"}},
        "spec": dict(spec),
    }
    return build_policy(document, path=path, locate=lambda p: SourceLocation(path, len(p), 1))


def line_items(rows: Iterable[Mapping[str, Any]], *, period: str = "2026-10", source: str = "test.csv") -> pa.Table:
    return build_line_items(rows, Period.parse(period), source_id=source)
