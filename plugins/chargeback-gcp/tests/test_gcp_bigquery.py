"""The BigQuery billing export through the real google-cloud-bigquery client and a local fake API."""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime
from decimal import Decimal

import jsonschema
import pytest
from chargeback_gcp.bigquery_export import (
    PAGE_ROWS,
    BigQueryBillingCollector,
    build_query,
)
from chargeback_gcp.clients import GoogleClients
from gcp_fake_server import FakeGoogle, ok, result_page
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, billing_v1

from chargeback_engine.plugin import COST_TABLE_SCHEMA, InputError, Period, RetryPolicy, plain_schema
from chargeback_engine.testing import Collectors, FakeClock, assembled_validator

PERIOD = Period(2026, 10)
CONFIG = {
    "id": "gcp",
    "collector": "gcp-bigquery-billing",
    "kind": "standard",
    "table": "acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9",
}
EXPORTED_1 = datetime(2026, 10, 2, 4, 0, tzinfo=UTC)
EXPORTED_2 = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)


def line(
    day: int,
    billed: str,
    project: str = "payments-prod",
    labels: str = '[{"key":"team","value":"payments"}]',
    exported: datetime = EXPORTED_1,
    **extra,
) -> dict:
    row = {
        "billed_cost": billed,
        "effective_cost": billed,
        "list_cost": extra.pop("list_cost", billed),
        "currency": "USD",
        "billing_account_id": "01A2B3-C4D5E6-F7A8B9",
        "charge_start": datetime(2026, 10, day, tzinfo=UTC),
        "charge_end": datetime(2026, 10, day, 1, tzinfo=UTC),
        "charge_category": "Usage",
        "charge_description": "N1 Predefined Instance Core running in Americas",
        "service": "Compute Engine",
        "sku_id": "2E27-4F75-95CD",
        "project_id": project,
        "project_name": project.replace("-", " "),
        "region": "us-central1",
        "resource_id": None,
        "resource_name": None,
        "pricing_quantity": "1",
        "pricing_unit": "hour",
        "labels": labels,
        "export_time": exported,
    }
    row.update(extra)
    return row


PAGE_1 = [line(1, "12.345678"), line(1, "0.000001", labels="[]")]
PAGE_2 = [line(2, "7.25", project="search-prod", labels='[{"key":"team","value":"search"}]'), line(2, "-1.10")]
PAGE_3 = [line(3, "100.000000001")]
TOTAL = Decimal("12.345678") + Decimal("0.000001") + Decimal("7.25") - Decimal("1.10") + Decimal("100.000000001")


def clients_for(server: FakeGoogle) -> GoogleClients:
    options = {"api_endpoint": server.url}
    credentials = AnonymousCredentials()
    return GoogleClients(
        bigquery=bigquery.Client(project="acme-billing", credentials=credentials, client_options=options),
        billing=billing_v1.CloudBillingClient(credentials=credentials, transport="rest", client_options=options),
        catalog=billing_v1.CloudCatalogClient(credentials=credentials, transport="rest", client_options=options),
    )


def collect(server: FakeGoogle, config=CONFIG, clock=None):
    collector = BigQueryBillingCollector(
        clients_factory=lambda project, location: clients_for(server),
        retry=RetryPolicy(clock=clock or FakeClock(), rng=random.Random(11)),
    )
    [source] = collector.collect(config, PERIOD)
    return source


def three_pages(server: FakeGoogle) -> None:
    server.serve_query_pages(
        {
            None: [ok(result_page(PAGE_1, "t2"))],
            "t2": [ok(result_page(PAGE_2, "t3", first=False))],
            "t3": [ok(result_page(PAGE_3, None, first=False))],
        }
    )


def test_three_pages_of_numeric_costs_arrive_exact():
    with FakeGoogle() as server:
        three_pages(server)
        source = collect(server)
        [(_, _, _, body), *_] = server.requests
    assert plain_schema(source.table.schema) == COST_TABLE_SCHEMA
    assert source.table.num_rows == 5
    assert sum(source.table["BilledCost"].to_pylist()) == TOTAL
    assert source.details["pages"] == 3
    assert source.version == "export_time:2026-10-02T04:00:00+00:00"
    request = json.loads(body)
    assert {p["name"]: p["parameterValue"]["value"] for p in request["queryParameters"]}["invoice_month"] == "202610"
    assert "@invoice_month" in request["query"] and "202610" not in request["query"]


def test_labels_become_tags_and_empty_labels_are_untagged():
    with FakeGoogle() as server:
        three_pages(server)
        tags = collect(server).table["Tags"].to_pylist()
    assert tags[:3] == ['{"team":"payments"}', "{}", '{"team":"search"}']


def test_a_trailing_empty_page_and_a_duplicated_page():
    with FakeGoogle() as server:
        server.serve_query_pages(
            {
                None: [ok(result_page(PAGE_1, "t2"))],
                "t2": [ok(result_page(PAGE_1, "t3", first=False))],
                "t3": [ok(result_page([], None, first=False))],
            }
        )
        source = collect(server)
    assert source.details["duplicate_pages"] == 1 and source.details["pages"] == 3
    assert sum(source.table["BilledCost"].to_pylist()) == Decimal("12.345679")


def test_a_full_last_page_without_a_token_is_flagged():
    with FakeGoogle() as server:
        server.serve_query_pages(
            {None: [ok(result_page([line(1, "0.01", sku_id=str(i)) for i in range(PAGE_ROWS)], None))]}
        )
        source = collect(server)
    assert source.details["possibly_truncated"] is True
    assert sum(source.table["BilledCost"].to_pylist()) == Decimal(100)


def test_rate_limits_are_retried_with_backoff_on_a_fake_clock():
    limited = (
        429,
        {},
        {
            "error": {
                "code": 429,
                "message": "Exceeded rate limits",
                "status": "RESOURCE_EXHAUSTED",
                "errors": [{"reason": "rateLimitExceeded", "message": "Exceeded rate limits"}],
            }
        },
    )
    clock = FakeClock()
    with FakeGoogle() as server:
        server.serve_query_pages({None: [limited, limited, ok(result_page(PAGE_3, None))]})
        source = collect(server, clock=clock)
    assert source.table.num_rows == 1
    assert len(clock.sleeps) == 2 and clock.sleeps[0] != clock.sleeps[1]


def test_a_permission_error_is_not_retried():
    denied = (
        403,
        {},
        {
            "error": {
                "code": 403,
                "message": "Access Denied: bigquery.jobs.create",
                "errors": [{"reason": "accessDenied", "message": "Access Denied"}],
            }
        },
    )
    clock = FakeClock()
    with FakeGoogle() as server:
        server.serve_query_pages({None: [denied]})
        with pytest.raises(InputError, match="HTTP 403: .*Access Denied"):
            collect(server, clock=clock)
    assert clock.sleeps == []


def test_export_time_is_a_high_water_mark_for_incremental_collection(tmp_path):
    config = dict(CONFIG, state_dir=str(tmp_path))
    with FakeGoogle() as server:
        three_pages(server)
        first = collect(server, config)
    late = [line(4, "0.5", exported=EXPORTED_2)]
    with FakeGoogle() as server:
        server.serve_query_pages({None: [ok(result_page(late, None))]})
        second = collect(server, config)
        since = {p["name"]: p["parameterValue"]["value"] for p in json.loads(server.requests[0][3])["queryParameters"]}
    assert since["since"].startswith("2026-10-02 04:00:00") or since["since"].startswith("2026-10-02T04:00:00")
    assert second.details["rows_fetched"] == 1 and second.table.num_rows == 6
    assert sum(second.table["BilledCost"].to_pylist()) == TOTAL + Decimal("0.5")
    assert first.version != second.version == "export_time:2026-11-03T04:00:00+00:00"
    assert second.table["x_SourceRow"].to_pylist() == [1, 2, 3, 4, 5, 6]


def test_queries_are_parameterised_and_cast_to_numeric():
    for kind in ("standard", "detailed", "focus"):
        for credits in ("net", "separate"):
            sql = build_query(dict(CONFIG, kind=kind, credits=credits))
            assert "AS NUMERIC" in sql and "@" in sql
    separate = build_query(dict(CONFIG, credits="separate"))
    assert "UNNEST(credits) AS c" in separate and "'Credit'" in separate
    schema = assembled_validator(Collectors(BigQueryBillingCollector()), "source", BigQueryBillingCollector.name)
    schema.validate(CONFIG)
    with pytest.raises(jsonschema.ValidationError):
        schema.validate(dict(CONFIG, table="x.y.z`; DROP TABLE t; --"))


def test_billing_accounts_and_project_mapping_enrich_names():
    with FakeGoogle() as server:
        three_pages(server)
        server.route(
            "GET",
            "/v1/billingAccounts/01A2B3-C4D5E6-F7A8B9/projects",
            lambda p, q, b: ok(
                {
                    "projectBillingInfo": [
                        {
                            "name": "projects/payments-prod/billingInfo",
                            "projectId": "payments-prod",
                            "billingAccountName": "billingAccounts/01A2B3-C4D5E6-F7A8B9",
                            "billingEnabled": True,
                        }
                    ],
                    "nextPageToken": "",
                }
            ),
        )
        server.route(
            "GET",
            "/v1/billingAccounts",
            lambda p, q, b: ok(
                {
                    "billingAccounts": [
                        {
                            "name": "billingAccounts/01A2B3-C4D5E6-F7A8B9",
                            "open": True,
                            "displayName": "Acme Corp",
                            "masterBillingAccount": "",
                        }
                    ],
                    "nextPageToken": "",
                }
            ),
        )
        source = collect(server, dict(CONFIG, enrich_names=True))
    assert set(source.table["BillingAccountName"].to_pylist()) == {"Acme Corp"}
    assert source.details["projects_not_on_billing_account"] == ["search-prod"]


def test_enrich_names_without_the_billing_extra_says_how_to_install_it(monkeypatch):
    import chargeback_gcp.clients as clients_module
    import google.cloud

    monkeypatch.setitem(sys.modules, "google.cloud.billing_v1", None)  # what Python does for a missing module
    monkeypatch.delattr(google.cloud, "billing_v1")
    with FakeGoogle() as server:
        three_pages(server)
        real = clients_for(server)
        monkeypatch.setattr(bigquery, "Client", lambda project, location: real.bigquery)  # no ADC in tests
        collector = BigQueryBillingCollector(
            clients_factory=clients_module.default_clients, retry=RetryPolicy(clock=FakeClock(), rng=random.Random(11))
        )
        assert list(collector.collect(CONFIG, PERIOD))  # names not asked for: the extra is not needed
        with pytest.raises(InputError, match=r"pip install 'chargeback-gcp\[billing\]'"):
            list(collector.collect(dict(CONFIG, enrich_names=True), PERIOD))


def test_catalog_list_prices_in_units_and_nanos():
    with FakeGoogle() as server:
        server.serve_query_pages(
            {None: [ok(result_page([line(1, "0.0475", list_cost="0.0475"), line(2, "0.04", list_cost="0.06")], None))]}
        )
        server.route(
            "GET",
            "/v1/services/6F81-5844-456A/skus",
            lambda p, q, b: ok(
                {
                    "skus": [
                        {
                            "name": "services/6F81-5844-456A/skus/2E27-4F75-95CD",
                            "skuId": "2E27-4F75-95CD",
                            "description": "N1 Predefined Instance Core running in Americas",
                            "category": {
                                "serviceDisplayName": "Compute Engine",
                                "resourceFamily": "Compute",
                                "resourceGroup": "N1Standard",
                                "usageType": "OnDemand",
                            },
                            "serviceRegions": ["us-central1"],
                            "pricingInfo": [
                                {
                                    "effectiveTime": "2026-10-01T00:00:00Z",
                                    "pricingExpression": {
                                        "usageUnit": "h",
                                        "usageUnitDescription": "hour",
                                        "displayQuantity": 1,
                                        "baseUnit": "s",
                                        "baseUnitConversionFactor": 3600,
                                        "tieredRates": [
                                            {
                                                "startUsageAmount": 0,
                                                "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": 47500000},
                                            }
                                        ],
                                    },
                                    "currencyConversionRate": 1,
                                }
                            ],
                            "serviceProviderName": "Google",
                        }
                    ],
                    "nextPageToken": "",
                }
            ),
        )
        source = collect(server, dict(CONFIG, list_price_services=["services/6F81-5844-456A"]))
    assert source.details["list_price_check"] == {"checked": 2, "differing": 1, "catalog_skus": 1}


class Recording:
    """Delegates to the real BigQuery client and remembers the keyword arguments of each query."""

    def __init__(self, client):
        self.client = client
        self.calls: list[dict] = []

    def query_and_wait(self, query, **kwargs):
        self.calls.append(kwargs)
        return self.client.query_and_wait(query, **kwargs)


def test_queries_have_explicit_timeouts_and_leave_retries_to_us():
    with FakeGoogle() as server:
        three_pages(server)
        clients = clients_for(server)
        recording = Recording(clients.bigquery)
        collector = BigQueryBillingCollector(
            clients_factory=lambda p, l: GoogleClients(recording, clients.billing, clients.catalog)
        )
        list(collector.collect(CONFIG, PERIOD))
    [call] = recording.calls
    assert (call["api_timeout"], call["wait_timeout"], call["job_retry"]) == (60.0, 900.0, None)
    assert not call["retry"]._predicate(Exception())


def test_the_focus_table_is_versioned_by_content_and_keeps_its_tags():
    rows = [line(1, "3.5", labels='{"team":"payments"}', exported=None), line(2, "1.25", labels="{}", exported=None)]
    with FakeGoogle() as server:
        server.serve_query_pages({None: [ok(result_page(rows, None))]})
        source = collect(server, dict(CONFIG, kind="focus"))
        request = json.loads(server.requests[0][3])
    assert "@period_start" in request["query"] and "BilledCost" in request["query"]
    assert source.table["Tags"].to_pylist() == ['{"team":"payments"}', "{}"]
    assert sum(source.table["BilledCost"].to_pylist()) == Decimal("4.75")
    assert source.version.startswith("sha256:")


def test_deadline_seconds_in_the_source_config_bounds_the_whole_collection():
    limited = (
        429,
        {},
        {
            "error": {
                "code": 429,
                "message": "Exceeded rate limits",
                "status": "RESOURCE_EXHAUSTED",
                "errors": [{"reason": "rateLimitExceeded", "message": "Exceeded rate limits"}],
            }
        },
    )
    clock = FakeClock()
    with FakeGoogle() as server:
        server.serve_query_pages({None: [limited] * 50})
        with pytest.raises(InputError, match="and the 20s deadline"):
            collect(server, config={**CONFIG, "deadline_seconds": 20}, clock=clock)
    assert 0 < clock.now <= 20
