"""The engine's collector contract (chargeback_engine.testing) for the BigQuery billing collector."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import ClassVar

import pytest
from chargeback_gcp import plugin
from chargeback_gcp.bigquery_export import BigQueryBillingCollector
from gcp_fake_server import FakeGoogle, ok, result_page
from test_gcp_bigquery import CONFIG, PAGE_1, PAGE_2, PAGE_3, TOTAL, clients_for

from chargeback_engine.plugin import Period
from chargeback_engine.testing import CollectorContract

NOT_FOUND = (
    404,
    {},
    {
        "error": {
            "code": 404,
            "message": "Not found: Table acme-billing:billing_export.missing",
            "errors": [{"reason": "notFound", "message": "Not found: Table"}],
            "status": "NOT_FOUND",
        }
    },
)


class TestBigQueryBillingContract(CollectorContract):
    plugin = plugin
    name = "gcp-bigquery-billing"
    period = Period(2026, 10)
    expected_totals: ClassVar[Mapping[str, Decimal]] = {"BilledCost": TOTAL, "EffectiveCost": TOTAL}

    @pytest.fixture
    def component(self) -> Iterator[BigQueryBillingCollector]:
        pages = {
            None: ok(result_page(PAGE_1, "t2")),
            "t2": ok(result_page(PAGE_2, "t3", first=False)),
            "t3": ok(result_page(PAGE_3, None, first=False)),
        }

        def query(path: str, params: dict, body: bytes):  # type: ignore[no-untyped-def]
            if b"billing_export.missing" in body:
                return NOT_FOUND
            return pages[params.get("pageToken", [None])[0]]

        with FakeGoogle() as server:
            server.route("POST", "/bigquery/v2/projects/acme-billing/queries", query)
            server.route("GET", "/bigquery/v2/projects/acme-billing/queries/", query)
            server.serve_query_pages({})  # adds jobs.get; the routes above answer first
            yield BigQueryBillingCollector(clients_factory=lambda project, location: clients_for(server))

    @pytest.fixture
    def config(self) -> dict:
        return CONFIG

    @pytest.fixture
    def bad_config(self) -> dict:
        return dict(CONFIG, table="acme-billing.billing_export.missing")
