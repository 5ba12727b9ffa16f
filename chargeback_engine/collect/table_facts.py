"""Exact numbers, versions and manifest details of a collected cost table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pyarrow as pa

from chargeback_engine import focus
from chargeback_engine.durable_files import table_sha256


def decimal_from_double(value: float) -> Decimal:
    """A double as the decimal its shortest repr spells (``0.1`` is 0.1, not 0.1000000000000000055...)."""
    return Decimal(repr(value))


def content_version(table: pa.Table) -> str:
    """A version that changes exactly when the collected rows do: the hash of their Arrow IPC form."""
    return table_sha256(table.combine_chunks())


def table_details(table: pa.Table) -> dict[str, Any]:
    """Row count and exact totals per currency of each money column, for the run manifest."""
    totals: dict[str, dict[str, str]] = {}
    if table.num_rows:
        # Summed as decimal256: a decimal128 sum past 1e20 would wrap around without a word.
        wide = pa.table(
            {
                "BillingCurrency": table["BillingCurrency"],
                **{c: table[c].cast(pa.decimal256(76, focus.MONEY.scale)) for c in focus.MONEY_COLUMNS},
            }
        )
        for column in focus.MONEY_COLUMNS:
            grouped = wide.group_by("BillingCurrency").aggregate([(column, "sum")])
            for currency, total in zip(grouped["BillingCurrency"].to_pylist(), grouped[f"{column}_sum"].to_pylist()):
                if total is not None:
                    totals.setdefault(column, {})[currency or ""] = str(total)
    return {"rows": table.num_rows, "totals": totals}


def tags_json(tags: Mapping[str, str | None]) -> str:
    """Tags as the FOCUS ``Tags`` JSON text: keys sorted so equal tags are equal text."""
    return json.dumps(dict(sorted(tags.items())), ensure_ascii=False, separators=(",", ":"))
