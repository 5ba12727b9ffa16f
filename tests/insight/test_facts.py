"""Facts conserve the ledger exactly and classify how money reached its owner."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine.errors import InputError
from chargeback_engine.insight.facts import ledger_facts
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.periods import Period


def ledger(rows: list[dict]) -> pa.Table:
    base = {
        "run_id": "r",
        "record_id": "x",
        "source_id": "s",
        "source_row": 0,
        "period": "2026-10",
        "currency": "USD",
        "stage": 0,
        "category": "direct",
        "method": "direct",
        "decision_id": "d",
        "policy_version": "1",
        "policy_hash": "h",
        "charge_period_start": datetime(2026, 10, 3, tzinfo=UTC),
        "service_name": "Amazon EC2",
    }
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=LEDGER_SCHEMA)


def test_coverage_follows_stage_rows_pools_and_buckets() -> None:
    facts = ledger_facts(
        [
            ledger(
                [
                    {"cost_center": "A", "amount": Decimal(10)},
                    {"cost_center": "POOL", "amount": Decimal(6)},
                    {"cost_center": "UNALLOCATED", "amount": Decimal("1.5"), "category": "unallocated"},
                    {
                        "cost_center": "POOL",
                        "amount": Decimal(-6),
                        "stage": 1,
                        "from_cost_center": "POOL",
                        "category": "shared",
                    },
                    {
                        "cost_center": "A",
                        "amount": Decimal(4),
                        "stage": 1,
                        "from_cost_center": "POOL",
                        "category": "shared",
                    },
                    {
                        "cost_center": "B",
                        "amount": Decimal(2),
                        "stage": 1,
                        "from_cost_center": "POOL",
                        "category": "shared",
                    },
                ]
            )
        ]
    )
    assert facts.by_coverage(Period(2026, 10)) == {
        "direct": Decimal(10),
        "shared": Decimal(6),
        "unallocated": Decimal("1.5"),
        "pooled": Decimal(0),
    }
    assert facts.by_cost_center(Period(2026, 10))["A"] == Decimal(14)


def test_a_charge_dated_outside_its_period_counts_on_the_first_day() -> None:
    facts = ledger_facts(
        [
            ledger(
                [
                    {
                        "cost_center": "A",
                        "amount": Decimal(3),
                        "category": "amortized",
                        "charge_period_start": datetime(2026, 1, 1, tzinfo=UTC),
                    }
                ]
            )
        ]
    )
    assert [f.day.isoformat() for f in facts.rows] == ["2026-10-01"]


def test_mixed_currencies_are_refused() -> None:
    with pytest.raises(InputError, match="mix currencies EUR, USD"):
        ledger_facts(
            [
                ledger([{"cost_center": "A", "amount": Decimal(1)}]),
                ledger([{"cost_center": "A", "amount": Decimal(1), "currency": "EUR"}]),
            ]
        )


# exact amounts at the ledger scale (10 digits after the point), drawn as integers: fast to generate
amounts = st.integers(-(10**16), 10**16).map(lambda units: Decimal(units).scaleb(-10))
rows = st.lists(
    st.fixed_dictionaries(
        {
            "cost_center": st.sampled_from(["A", "B", "POOL", "UNALLOCATED"]),
            "amount": amounts,
            "stage": st.integers(0, 2),
            "day": st.integers(1, 31),
            "service_name": st.sampled_from(["S3", "EC2", None]),
        }
    ),
    min_size=1,
    max_size=20,
)


@given(rows)
def test_facts_conserve_every_cent_of_the_ledger(generated: list[dict]) -> None:
    table = ledger(
        [
            {
                "cost_center": r["cost_center"],
                "amount": r["amount"],
                "stage": r["stage"],
                "service_name": r["service_name"],
                "from_cost_center": "POOL" if r["stage"] else None,
                "category": "unallocated" if r["cost_center"] == "UNALLOCATED" else "direct",
                "charge_period_start": datetime(2026, 10, r["day"], tzinfo=UTC),
            }
            for r in generated
        ]
    )
    facts = ledger_facts([table])
    period = Period(2026, 10)
    expected = sum((r["amount"] for r in generated), Decimal(0))
    assert facts.total(period) == expected
    assert sum(facts.by_coverage(period).values(), Decimal(0)) == expected
    assert sum(facts.by_cost_center(period).values(), Decimal(0)) == expected
