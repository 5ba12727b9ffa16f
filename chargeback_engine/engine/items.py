"""FOCUS line items from plain mappings, for policy tests and small embedded runs.

Money is given as text (or Decimal) and stays exact; ``Tags`` may be a mapping. Omitted
columns get sensible defaults for the period: charge period = the month, currency = the
policy's, one billing account.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from chargeback_engine.errors import InputError
from chargeback_engine.focus import COST_TABLE_SCHEMA, MONEY_COLUMNS, conform
from chargeback_engine.periods import Period


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def build_line_items(
    items: Iterable[Mapping[str, Any]], period: Period, *, source_id: str = "inline", currency: str = "USD"
) -> pa.Table:
    """A cost table with one row per mapping; row numbers start at 1, as in a file."""
    start = datetime(period.year, period.month, 1, tzinfo=UTC)
    end = datetime(period.end.year, period.end.month, 1, tzinfo=UTC)
    rows = []
    for number, item in enumerate(items, start=1):
        unknown = sorted(set(item) - set(COST_TABLE_SCHEMA.names))
        if unknown:
            raise InputError(f"{source_id}: item {number}: unknown FOCUS column(s) {', '.join(unknown)}")
        row: dict[str, Any] = {
            "BillingCurrency": currency,
            "BillingAccountId": "account-1",
            "ChargeCategory": "Usage",
            "ChargePeriodStart": start,
            "ChargePeriodEnd": end,
            "BillingPeriodStart": start,
            "BillingPeriodEnd": end,
            "x_SourceId": source_id,
            "x_SourceRow": number,
        }
        for name, value in item.items():
            field_type = COST_TABLE_SCHEMA.field(name).type
            if name in MONEY_COLUMNS or pa.types.is_decimal(field_type):
                try:
                    value = None if value is None else Decimal(str(value))
                except InvalidOperation:
                    raise InputError(f"{source_id}: item {number}: {name} {value!r} is not a number") from None
            elif name == "Tags" and isinstance(value, Mapping):
                value = json.dumps(value, sort_keys=True, ensure_ascii=False)
            elif pa.types.is_timestamp(field_type):
                value = _timestamp(value)
            elif value is not None and not isinstance(value, int | str):
                value = str(value)
            row[name] = value
        rows.append(row)
    columns = {
        name: pa.array([r.get(name) for r in rows], COST_TABLE_SCHEMA.field(name).type)
        for name in COST_TABLE_SCHEMA.names
    }
    return conform(pa.table(columns))
