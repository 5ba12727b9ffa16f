"""The contract classes of ``chargeback_engine.testing``, run on every built-in component.

Built-ins are plugins like any other, so they must pass what a third party's must pass.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from chargeback_engine.allocators import amortized, direct, even, fixed, proportional, tag, tiered
from chargeback_engine.collectors import focus_files
from chargeback_engine.engine.result import RunResult
from chargeback_engine.exporters import ledger_files
from chargeback_engine.periods import Period
from chargeback_engine.testing import (
    CONTRACT_LINE_ITEMS,
    AllocatorContract,
    CollectorContract,
    ExporterContract,
    line_items,
    make_engine,
    make_policy,
)

CPU_HOURS = {
    "cpu-hours": {
        "inline": [
            {"period": "2026-10", "cost_center": "CC-1", "quantity": 3},
            {"period": "2026-10", "cost_center": "CC-2", "quantity": 1},
        ]
    }
}


class TestDirect(AllocatorContract):
    plugin = direct
    name = "direct"
    valid_blocks = [{"method": "direct", "cost_center": "CC-1"}]
    invalid_blocks = [{"method": "direct"}, {"method": "direct", "cost_center": "CC-404"}]


class TestEven(AllocatorContract):
    plugin = even
    name = "even"
    valid_blocks = [{"method": "even", "among": ["CC-1", "CC-2", "CC-3"]}, {"method": "even"}]
    invalid_blocks = [{"method": "even", "among": []}, {"method": "even", "among": ["CC-1", "CC-404"]}]


class TestFixed(AllocatorContract):
    plugin = fixed
    name = "fixed"
    valid_blocks = [
        {"method": "fixed", "splits": {"CC-1": "0.5", "CC-2": "0.5"}},
        {"method": "fixed", "splits": {"CC-1": "0.3333333334", "CC-2": "0.3333333333", "CC-3": "0.3333333333"}},
    ]
    invalid_blocks = [
        {"method": "fixed", "splits": {"CC-1": "0.5", "CC-2": "0.4"}},
        {"method": "fixed", "splits": {"CC-404": "1"}},
        {"method": "fixed", "splits": {}},
    ]


class TestTag(AllocatorContract):
    plugin = tag
    name = "tag"
    valid_blocks = [
        {"method": "tag", "keys": ["team"], "map": {"web": "CC-1", "data": "CC-2"}, "fallback": "CC-3"},
        {"method": "tag", "keys": ["cost-center", "team"]},
    ]
    invalid_blocks = [{"method": "tag", "keys": []}, {"method": "tag", "keys": ["team"], "fallback": "CC-404"}]


class TestProportional(AllocatorContract):
    plugin = proportional
    name = "proportional"
    policy_spec = {"drivers": CPU_HOURS}
    valid_blocks = [
        {"method": "proportional", "driver": "cpu-hours"},
        {"method": "proportional", "driver": "cpu-hours", "among": ["CC-2", "CC-3"], "fallback": "even"},
        {"method": "proportional", "basis": "direct-cost"},
    ]
    invalid_blocks = [
        {"method": "proportional", "driver": "cpu-hours", "basis": "direct-cost"},
        {"method": "proportional", "driver": "cpu-hours", "among": ["CC-404"]},
    ]


class TestTiered(AllocatorContract):
    plugin = tiered
    name = "tiered"
    valid_blocks = [
        {
            "method": "tiered",
            "by": "ServiceName",
            "tiers": {
                "Amazon EC2": {"method": "direct", "cost_center": "CC-1"},
                "Amazon S3": {"method": "fixed", "splits": {"CC-2": "0.25", "CC-3": "0.75"}},
            },
            "default": {"method": "even", "among": ["CC-1", "CC-2"]},
        }
    ]
    invalid_blocks = [{"method": "tiered", "by": "ServiceName", "tiers": {}}]


class TestAmortized(AllocatorContract):
    plugin = amortized
    name = "amortized"
    valid_blocks = [{"method": "amortized", "months": 12, "then": {"method": "even", "among": ["CC-1", "CC-2"]}}]
    invalid_blocks = [{"method": "amortized", "months": 0, "then": {"method": "even"}}]


class TestAllocationsExporter(ExporterContract):
    plugin = ledger_files
    name = "allocations"


class TestSummaryExporter(ExporterContract):
    plugin = ledger_files
    name = "summary"


class TestFocusAllocatedExporter(ExporterContract):
    plugin = ledger_files
    name = "focus-allocated"


class TestDecisionsExporter(ExporterContract):
    plugin = ledger_files
    name = "decisions"


class TestScheduleExporter(ExporterContract):
    plugin = ledger_files
    name = "schedule"

    @pytest.fixture
    def result(self) -> RunResult:
        """A run with parts deferred to later periods: without them there is no schedule to write."""
        rule = {
            "id": "spread",
            "priority": 1,
            "allocate": {"method": "amortized", "months": 3, "then": {"method": "even", "among": ["CC-1", "CC-2"]}},
        }
        policy = make_policy(builtins=True, rules=[rule])
        return make_engine(policy, builtins=True).run([line_items(*CONTRACT_LINE_ITEMS)], "2026-10")


class TestFocusFilesCollector(CollectorContract):
    plugin = focus_files
    name = "focus-files"
    period = Period(2026, 10)
    expected_totals = {"BilledCost": Decimal("96.6666666675"), "EffectiveCost": Decimal("96.6666666675")}

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, object]:
        table = line_items(
            {"BilledCost": "100.0000000001", "Tags": {"team": "web"}},
            {"BilledCost": "0.0000000007", "ServiceName": "Amazon S3"},
            {"BilledCost": "-3.3333333333", "ChargeCategory": "Credit"},
        )
        pacsv.write_csv(table.drop_columns(["x_SourceId", "x_SourceRow"]), tmp_path / "focus.csv")
        return {"collector": "focus-files", "paths": [str(tmp_path / "focus.csv")]}

    @pytest.fixture
    def bad_config(self, tmp_path: Path) -> dict[str, object]:
        (tmp_path / "bad.csv").write_text(
            "BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd\n"
            "NaN,1,USD,2026-10-01T00:00:00Z,2026-11-01T00:00:00Z\n",
            encoding="utf-8",
        )
        return {"collector": "focus-files", "paths": [str(tmp_path / "bad.csv")]}
