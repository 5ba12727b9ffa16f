"""The engine's collector contract (chargeback_engine.testing) for both Azure collectors."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

import pytest
from azure.mgmt.costmanagement import CostManagementClient
from azure.storage.blob import ContainerClient
from azure_recorded import (
    BlobContainer,
    FakeCredential,
    RecordedTransport,
    json_response,
)
from chargeback_azure import plugin
from chargeback_azure.cost_query import CostQueryCollector
from chargeback_azure.focus_export import FocusExportCollector
from test_azure_cost_query import CONFIG as QUERY_CONFIG
from test_azure_cost_query import (
    PAGE_1,
    PAGE_2,
    PAGE_3,
    QUERY_PATH,
    TOTAL,
    by_skiptoken,
    query_page,
)
from test_azure_focus_export import ACCOUNT, deliver, focus_row
from test_azure_focus_export import CONFIG as EXPORT_CONFIG

from chargeback_engine.plugin import Period
from chargeback_engine.testing import CollectorContract

BAD_SCOPE = "/subscriptions/00000000-0000-0000-0000-00000000000b"


class TestCostQueryContract(CollectorContract):
    plugin = plugin
    name = "azure-cost-query"
    period = Period(2026, 10)
    expected_totals: ClassVar[Mapping[str, Decimal]] = {"BilledCost": TOTAL, "EffectiveCost": TOTAL}

    @pytest.fixture
    def component(self) -> CostQueryCollector:
        transport = RecordedTransport()
        transport.route(
            "POST",
            QUERY_PATH,
            by_skiptoken(
                {None: [json_response(PAGE_1)], "page2": [json_response(PAGE_2)], "page3": [json_response(PAGE_3)]}
            ),
        )
        transport.route(
            "POST",
            f"{BAD_SCOPE}/providers/Microsoft.CostManagement/query",
            by_skiptoken({None: [json_response(query_page(['["12,50", 20261001, "Storage", "team", "x", "USD"]']))]}),
        )
        return CostQueryCollector(
            client_factory=lambda endpoint: CostManagementClient(
                FakeCredential(), base_url=endpoint, transport=transport, retry_total=0
            )
        )

    @pytest.fixture
    def config(self) -> dict:
        return QUERY_CONFIG

    @pytest.fixture
    def bad_config(self) -> dict:
        return dict(QUERY_CONFIG, scope=BAD_SCOPE)


class TestFocusExportContract(CollectorContract):
    plugin = plugin
    name = "azure-focus-export"
    period = Period(2026, 10)
    expected_totals: ClassVar[Mapping[str, Decimal]] = {
        "BilledCost": Decimal("7.6250000001"),
        "EffectiveCost": Decimal(7),
    }

    @pytest.fixture
    def component(self) -> FocusExportCollector:
        transport = RecordedTransport()
        container = BlobContainer(transport, ACCOUNT, "exports")
        deliver(
            container,
            "run-1",
            "2026-11-02T06:00:00Z",
            {
                "part_0_0001.csv.gz": [
                    focus_row(1, "10.125", "9.5", "payments"),
                    focus_row(2, "0.0000000001", "0", None),
                ],
                "part_1_0001.csv.gz": [focus_row(3, "-2.5", "-2.5", "search")],
            },
        )
        broken = BlobContainer(transport, ACCOUNT, "broken")  # the same export layout, a bad amount in it
        deliver(broken, "run-1", "2026-11-02T06:00:00Z", {"part_0_0001.csv.gz": [focus_row(1, "ten", "9.5", "x")]})
        return FocusExportCollector(
            container_factory=lambda url, name: ContainerClient(
                url, name, credential=FakeCredential(), transport=transport, retry_total=0
            )
        )

    @pytest.fixture
    def config(self) -> dict:
        return EXPORT_CONFIG

    @pytest.fixture
    def bad_config(self) -> dict:
        return dict(EXPORT_CONFIG, container="broken")
