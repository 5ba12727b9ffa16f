"""The engine's collector contract (chargeback_engine.testing) for both AWS collectors."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

import pytest
from chargeback_aws import plugin
from chargeback_aws.cost_explorer import CostExplorerCollector
from chargeback_aws.data_exports import DataExportsCollector
from test_aws_cost_explorer import PAGE_1, PAGE_2, PAGE_3, factory, stubbed
from test_aws_data_exports import (
    BILLED,
    EFFECTIVE,
    FILE_1,
    FILE_2,
    cur_row,
    deliver,
    gzip_csv,
    s3,  # noqa: F401 (the moto bucket fixture)
)
from test_aws_data_exports import CONFIG as EXPORT_CONFIG

from chargeback_engine.plugin import Period, RetryPolicy
from chargeback_engine.testing import CollectorContract, FakeClock


def three_pages(service: str, region: str | None):
    """A fresh set of stubbed pages on every collection, so the contract can collect twice."""
    client, _ = stubbed([(PAGE_1, None), (PAGE_2, "token-2"), (PAGE_3, "token-3")])
    return factory(client)(service, region)


class TestCostExplorerContract(CollectorContract):
    plugin = plugin
    name = "aws-cost-explorer"
    period = Period(2026, 10)
    expected_totals: ClassVar[Mapping[str, Decimal]] = {
        "BilledCost": Decimal("118.4956789013"),
        "EffectiveCost": Decimal("116.1490000002"),
    }

    @pytest.fixture
    def component(self) -> CostExplorerCollector:
        return CostExplorerCollector(
            client_factory=three_pages, retry=RetryPolicy(clock=FakeClock(), rng=random.Random(2))
        )

    @pytest.fixture
    def config(self) -> dict:
        return {
            "id": "aws-ce",
            "collector": "aws-cost-explorer",
            "group_by": [{"dimension": "LINKED_ACCOUNT"}, {"tag": "team"}],
        }


class TestDataExportsContract(CollectorContract):
    plugin = plugin
    name = "aws-data-exports"
    period = Period(2026, 10)
    expected_totals: ClassVar[Mapping[str, Decimal]] = {"BilledCost": BILLED, "EffectiveCost": EFFECTIVE}

    @pytest.fixture
    def component(self) -> DataExportsCollector:
        return DataExportsCollector()

    @pytest.fixture
    def config(self, s3) -> dict:  # noqa: F811 (the imported fixture)
        deliver(s3, "exec-1", {"part-1.csv.gz": gzip_csv(FILE_1), "part-2.csv.gz": gzip_csv(FILE_2)})
        return EXPORT_CONFIG

    @pytest.fixture
    def bad_config(self, s3) -> dict:  # noqa: F811 (the imported fixture)
        deliver(s3, "exec-1", {"part-1.csv.gz": gzip_csv([cur_row("Usage", "twelve")])})
        return EXPORT_CONFIG
