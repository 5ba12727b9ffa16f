"""The allocation ledger and the decision (audit) table: the engine's two outputs.

Both are columnar (Arrow), never a Python object per line item. The ledger has one row
per (source line, cost center, stage); every row points at its decision and its source
line, so any cost-center total can be explained down to rules and provider rows.
Redistributing a shared pool at stage *n* writes a negative row for the pool and positive
rows for its consumers, so the sum per source line is conserved at every stage.
"""

from __future__ import annotations

import pyarrow as pa

from chargeback_engine.focus import MONEY, TIMESTAMP

#: How a ledger row came about; invoices group their lines by it.
CATEGORIES = ("direct", "shared", "amortized", "unallocated", "adjustment", "credit")

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),  # stable hash of source + row
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("period", pa.string(), nullable=False),  # YYYY-MM the amount is charged to
        pa.field("charge_period_start", TIMESTAMP),
        pa.field("billing_account_id", pa.string()),
        pa.field("sub_account_id", pa.string()),
        pa.field("service_name", pa.string()),
        pa.field("service_category", pa.string()),
        pa.field("resource_id", pa.string()),
        pa.field("region_id", pa.string()),
        pa.field("charge_category", pa.string()),
        pa.field("cost_center", pa.string(), nullable=False),
        pa.field("amount", MONEY, nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("stage", pa.int32(), nullable=False),  # 0 = direct allocation, n = n-th shared stage
        pa.field("from_cost_center", pa.string()),  # the pool a stage row was redistributed from
        pa.field("category", pa.string(), nullable=False),  # one of CATEGORIES
        pa.field("rule_id", pa.string()),  # null when no rule matched (unallocated)
        pa.field("method", pa.string(), nullable=False),
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("policy_hash", pa.string(), nullable=False),
    ]
)

#: A run's decisions as it records them, one row each, by content-derived id: the
#: ``decisions`` output, the finance audit trail and the ``chargeback_decisions_recorded`` hook.
DECISION_RECORD_SCHEMA = pa.schema(
    [
        pa.field("decision_id", pa.string(), nullable=False),  # content-derived
        pa.field("match_key", pa.string(), nullable=False),  # canonical JSON of the key's fields
        pa.field("rule_id", pa.string()),
        pa.field("rule_location", pa.string()),  # file:line:column of the rule
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("policy_hash", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("shares", pa.string(), nullable=False),  # canonical JSON {cost_center: integer weight}
        pa.field("months", pa.int32()),  # amortization: null none, 0 commitment term, else N months
        pa.field("reason", pa.string(), nullable=False),
    ]
)
