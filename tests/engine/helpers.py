"""Builders for engine tests: policies from dicts and FOCUS line items from rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa

from chargeback_engine.focus import COST_TABLE_SCHEMA, conform
from chargeback_engine.policy.build import build_policy
from chargeback_engine.policy.model import Policy, SourceLocation


def make_policy(spec: Mapping[str, Any], *, version: str = "1", path: str = "test.yaml") -> Policy:
    document = {
        "apiVersion": "chargeback/v1",
        "kind": "AllocationPolicy",
        "metadata": {"name": "test", "version": version, "effective": {"from": "2020-01-01"}},
        "spec": dict(spec),
    }
    return build_policy(document, path=path, locate=lambda p: SourceLocation(path, len(p), 1))


def line_items(rows: Iterable[Mapping[str, Any]], *, period: str = "2026-10", source: str = "test.csv") -> pa.Table:
    """FOCUS rows; EffectiveCost given as text or Decimal, Tags as a dict."""
    year, month = map(int, period.split("-"))
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    out = []
    for i, row in enumerate(rows, start=1):
        row = dict(row)
        cost = Decimal(str(row.pop("EffectiveCost", "0")))
        tags = row.pop("Tags", None)
        out.append({
            "EffectiveCost": cost,
            "BilledCost": cost,
            "BillingCurrency": "USD",
            "BillingAccountId": "acct-1",
            "ChargePeriodStart": start,
            "ChargePeriodEnd": start,
            "ChargeCategory": "Usage",
            "Tags": json.dumps(tags) if isinstance(tags, dict) else tags,
            "x_SourceId": source,
            "x_SourceRow": i,
            **row,
        })
    names = [n for n in COST_TABLE_SCHEMA.names]
    arrays = {n: [r.get(n) for r in out] for n in names if any(n in r for r in out)}
    return conform(pa.table({n: pa.array(v, COST_TABLE_SCHEMA.field(n).type) for n, v in arrays.items()}))
