"""Real Arrow ledgers in ``LEDGER_SCHEMA`` for the finance tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa

from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.periods import Period
from chargeback_engine.policy.policy_model import CostCenter

if TYPE_CHECKING:
    from chargeback_engine.finance.runs import RunInput

# (cost_center, service, amount, category, method); amounts as strings for exactness.
Row = tuple[str, str, str, str, str]


def ledger_table(
    period: Period | str,
    rows: Iterable[Row],
    currency: str = "USD",
    source: str = "focus.csv",
    policy_version: str = "2026.1",
) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in LEDGER_SCHEMA.names}
    for i, (cc, service, amount, category, method) in enumerate(rows):
        record = hashlib.sha256(f"{source}:{i}".encode()).hexdigest()[:16]
        values = {
            "run_id": "run-test",
            "record_id": record,
            "source_id": source,
            "source_row": i,
            "period": str(period),
            "charge_period_start": None,
            "billing_account_id": "acct-1",
            "sub_account_id": None,
            "service_name": service,
            "service_category": None,
            "resource_id": None,
            "region_id": None,
            "charge_category": "Usage",
            "cost_center": cc,
            "amount": Decimal(amount),
            "currency": currency,
            "stage": 0,
            "from_cost_center": None,
            "category": category,
            "rule_id": None if category == "unallocated" else f"rule-{method}",
            "method": method,
            "decision_id": f"dec-{method}-{cc}",
            "policy_version": policy_version,
            "policy_hash": "sha256:test",
        }
        for name in LEDGER_SCHEMA.names:
            columns[name].append(values[name])
    return pa.Table.from_pydict(columns, schema=LEDGER_SCHEMA)


COST_CENTERS: Sequence[CostCenter] = (
    CostCenter("CC-100", "Backend", mode="chargeback", gl_account="6420", entity="ACME-US"),
    CostCenter("CC-200", "Data", mode="chargeback", gl_account="6430", entity="ACME-DE"),
    CostCenter("CC-300", "Research", mode="showback"),
    CostCenter("CC-400", "Mobile", mode="auto", gl_account="6440", entity="ACME-US"),
)


def run_input(
    period: str,
    rows: Iterable[Row],
    version: str = "v1",
    currency: str = "USD",
    cost_centers: Sequence[CostCenter] = COST_CENTERS,
    policy_version: str = "2026.1",
) -> RunInput:
    from chargeback_engine.finance.runs import RunInput

    p = Period.parse(period)
    return RunInput(
        p,
        ledger_table(p, rows, currency=currency, policy_version=policy_version),
        cost_centers,
        policy_version,
        "sha256:policy",
        {"focus.csv": version},
        unallocated="UNALLOCATED",
    )


#: A small month: two chargeback cost centers in two entities, a showback one, an auto one, unallocated.
MONTH: list[Row] = [
    ("CC-100", "Amazon EC2", "100.123456789", "direct", "tag"),
    ("CC-100", "Amazon S3", "20.0049", "direct", "tag"),
    ("CC-200", "Amazon EC2", "50.555", "direct", "tag"),
    ("CC-200", "Amazon RDS", "-3.3333333333", "credit", "tag"),
    ("CC-300", "Amazon EC2", "33.3333333333", "direct", "tag"),
    ("CC-400", "Amazon EC2", "12.5", "shared", "proportional"),
    ("CC-400", "Amazon S3", "7.777", "direct", "tag"),
    ("UNALLOCATED", "Amazon EC2", "1.0101", "unallocated", "none"),
]
