"""The parity policy: every built-in method, both shared stages and amortization, written
against the vocabulary of the synthetic month (``chargeback_engine.bench.synthetic``)."""

from __future__ import annotations

from typing import Any

from chargeback_engine.bench.synthetic import COST_CENTERS, TEAMS

CONSUMERS = [cc for cc, name in COST_CENTERS if "shared" not in name]


def parity_spec(cost_column: str = "BilledCost") -> dict[str, Any]:
    """A policy spec touching every method, fallback, stage kind and the unallocated bucket."""
    return {
        "cost_column": cost_column,
        "tags": {"normalize": {"keys": "lower", "strip": True}, "aliases": {"costcenter": "cost-center"}},
        "cost_centers": [{"id": cc, "shared": "shared" in name} for cc, name in COST_CENTERS],
        "drivers": {"storage-gb": {"inline": [{"period": "2026-10", "cost_center": cc, "quantity": q}
                                              for cc, q in zip(CONSUMERS, [5, 0, 13, 700, 1, 0, 3, 2, 9, 11], strict=True)]}},
        "rules": [
            {"id": "reserved-instances", "priority": 100,
             "when": {"CommitmentDiscountType": "Reserved Instance"},
             "allocate": {"method": "amortized", "months": 12,
                          "then": {"method": "proportional", "basis": "direct-cost", "fallback": "even"}}},
            {"id": "support", "priority": 90, "when": {"ServiceName": "AWS Support"},
             "allocate": {"method": "amortized", "months": "commitment-term", "then": {"method": "even"}}},
            {"id": "credits", "priority": 80, "when": {"ChargeCategory": "Credit"},
             "allocate": {"method": "proportional", "basis": "direct-cost", "among": CONSUMERS[:4], "fallback": "even"}},
            {"id": "platform-shared", "priority": 70, "when": {"tags.shared": "true"},
             "allocate": {"method": "direct", "cost_center": "CC-9000"}},
            {"id": "storage", "priority": 60, "when": {"ServiceName": {"in": ["Amazon S3", "Amazon Elastic Block Store"]}},
             "allocate": {"method": "proportional", "driver": "storage-gb", "fallback": "even"}},
            {"id": "by-environment", "priority": 50, "when": {"ServiceName": {"in": ["Amazon EC2", "Amazon RDS"]}},
             "allocate": {"method": "tiered", "by": "tags.environment",
                          "tiers": {"production": {"method": "tag", "keys": ["cost-center", "team"],
                                                   "map": dict(TEAMS), "fallback": "CC-9001"},
                                    "staging": {"method": "fixed", "splits": {"CC-1001": "0.3333", "CC-1002": "0.3333",
                                                                              "CC-1003": "0.3334"}}},
                          "default": {"method": "even", "among": CONSUMERS[3:7]}}},
            {"id": "tagged", "priority": 40, "when": {"ServiceName": {"not_in": ["Amazon CloudWatch"]}},
             "allocate": {"method": "tag", "keys": ["cost-center", "team"], "map": dict(TEAMS)}},
            {"id": "observability", "priority": 30, "when": {"ServiceName": "Amazon CloudWatch", "tags.team": {"exists": True}},
             "allocate": {"method": "direct", "cost_center": "CC-9001"}},
        ],
        "stages": [
            {"pool": "CC-9000", "allocate": {"method": "proportional", "basis": "direct-cost", "fallback": "even"}},
            {"pool": "CC-9001", "allocate": {"method": "even", "among": CONSUMERS[:5]}},
        ],
    }
