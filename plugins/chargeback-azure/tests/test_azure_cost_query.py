"""Cost Management Query - Usage through the SDK's own pipeline, with recorded responses."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import jsonschema
import pytest
from azure.mgmt.costmanagement import CostManagementClient
from azure_recorded import FakeCredential, RecordedTransport, json_response, sequence
from chargeback_azure.cost_query import CostQueryCollector
from structlog.testing import capture_logs

from chargeback_engine.plugin import COST_TABLE_SCHEMA, InputError, Period, RetryPolicy, plain_schema
from chargeback_engine.testing import Collectors, FakeClock, assembled_validator

PERIOD = Period(2026, 10)
SCOPE = "/subscriptions/00000000-0000-0000-0000-000000000001"
QUERY_PATH = f"{SCOPE}/providers/Microsoft.CostManagement/query"
ARM = "https://management.azure.com"
CONFIG = {
    "id": "azure-sub",
    "collector": "azure-cost-query",
    "scope": SCOPE,
    "cost_type": "ActualCost",
    "group_by": [{"dimension": "ServiceName"}, {"tag": "team"}],
}
COLUMNS = [
    {"name": "Cost", "type": "Number"},
    {"name": "UsageDate", "type": "Number"},
    {"name": "ServiceName", "type": "String"},
    {"name": "TagKey", "type": "String"},
    {"name": "TagValue", "type": "String"},
    {"name": "Currency", "type": "String"},
]


def query_page(rows: list[str], skiptoken: str | None = None) -> str:
    """A Query - Usage response as the service writes it; rows are raw JSON so numbers keep their digits."""
    next_link = f'"{ARM}{QUERY_PATH}?api-version=2023-03-01&$skiptoken={skiptoken}"' if skiptoken else "null"
    return (
        f'{{"id": "{SCOPE}/providers/Microsoft.CostManagement/query/6c8a1a52", "name": "6c8a1a52", '
        f'"type": "Microsoft.CostManagement/query", "location": null, "sku": null, "eTag": null, '
        f'"properties": {{"nextLink": {next_link}, "columns": {json.dumps(COLUMNS)}, '
        f'"rows": [{", ".join(rows)}]}}}}'
    )


PAGE_1 = query_page(
    [
        '[12.34567890123456789012, 20261001, "Virtual Machines", "team", "payments", "USD"]',
        '[0.1, 20261001, "Storage", "team", "", "USD"]',
    ],
    "page2",
)
PAGE_2 = query_page(
    [
        '[7.25, 20261002, "Virtual Machines", "team", "search", "USD"]',
        '[-1.1, 20261002, "Virtual Machines", "team", "search", "USD"]',
    ],
    "page3",
)
PAGE_3 = query_page(['[100, 20261003, "Bandwidth", "team", "search", "USD"]'])
TOTAL = Decimal("12.345678901234567890") + Decimal("0.1") + Decimal("7.25") - Decimal("1.1") + 100


def by_skiptoken(pages: dict[str | None, list[tuple[int, dict[str, str], bytes]]]):
    def handler(request):
        token = request.url.split("$skiptoken=")[1] if "$skiptoken=" in request.url else None
        queue = pages[token]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


def collector_for(transport: RecordedTransport, clock: FakeClock | None = None) -> CostQueryCollector:
    def client(endpoint: str) -> CostManagementClient:
        return CostManagementClient(FakeCredential(), base_url=endpoint, transport=transport, retry_total=0)

    return CostQueryCollector(
        client_factory=client, retry=RetryPolicy(clock=clock or FakeClock(), rng=random.Random(5))
    )


def run(pages, config=CONFIG, clock=None):
    transport = RecordedTransport()
    transport.route(
        "POST",
        QUERY_PATH,
        by_skiptoken({k: [json_response(p) if isinstance(p, str) else p for p in v] for k, v in pages.items()}),
    )
    [source] = collector_for(transport, clock).collect(config, PERIOD)
    return source, transport


def test_three_pages_follow_next_link_with_exact_decimals():
    source, transport = run({None: [PAGE_1], "page2": [PAGE_2], "page3": [PAGE_3]})
    assert plain_schema(source.table.schema) == COST_TABLE_SCHEMA
    assert source.table.num_rows == 5
    assert sum(source.table["BilledCost"].to_pylist()) == TOTAL
    assert source.details["pages"] == 3
    assert source.details["rounding"] == {"Cost": {"values": 1, "residue": "0.00000000000000000012"}}
    bodies = [json.loads(r.content) for r in transport.requests]
    assert all(b == bodies[0] for b in bodies)  # every nextLink is POSTed with the same query
    assert bodies[0]["dataset"]["aggregation"] == {"totalCost": {"name": "Cost", "function": "Sum"}}
    assert bodies[0]["dataset"]["grouping"] == [
        {"type": "Dimension", "name": "ServiceName"},
        {"type": "TagKey", "name": "team"},
    ]
    assert bodies[0]["timePeriod"] == {"from": "2026-10-01T00:00:00+00:00", "to": "2026-10-31T23:59:59+00:00"}
    assert transport.requests[0].headers["Authorization"] == "Bearer fake-token"
    assert transport.last_kwargs["read_timeout"] == 120


def test_empty_tag_values_are_untagged_and_days_are_charge_periods():
    source, _ = run({None: [query_page(['[1, 20261031, "Storage", "team", "", "USD"]'])]})
    [row] = source.table.to_pylist()
    assert row["Tags"] == "{}"
    assert row["ChargePeriodStart"].isoformat() == "2026-10-31T00:00:00+00:00"
    assert row["ChargePeriodEnd"].isoformat() == "2026-11-01T00:00:00+00:00"


def test_a_trailing_empty_page_adds_nothing():
    source, _ = run({None: [PAGE_1], "page2": [query_page([])]})
    assert source.table.num_rows == 2 and source.details["pages"] == 2


def test_a_duplicated_page_is_counted_once():
    duplicate = PAGE_1.replace("page2", "page3")
    source, _ = run({None: [PAGE_1], "page2": [duplicate], "page3": [PAGE_3]})
    assert source.details["duplicate_pages"] == 1
    assert sum(source.table["BilledCost"].to_pylist()) == Decimal("112.445678901234567890")


def test_a_full_last_page_without_next_link_is_flagged():
    rows = [f'[0.01, 20261001, "Storage", "team", "t{i}", "USD"]' for i in range(1000)]
    with capture_logs() as logs:
        source, _ = run({None: [query_page(rows)]})
    assert [e["log_level"] for e in logs if e["event"] == "collector.page_limit_without_next"] == ["warning"]
    assert source.details["possibly_truncated"] is True
    assert sum(source.table["BilledCost"].to_pylist()) == Decimal(10)


def test_429_waits_at_least_retry_after():
    throttled = json_response(
        {"error": {"code": "429", "message": "Too many requests"}},
        429,
        {"x-ms-ratelimit-microsoft.costmanagement-entity-retry-after": "37", "Retry-After": "20"},
    )
    clock = FakeClock()
    source, transport = run({None: [throttled, throttled, PAGE_3]}, clock=clock)
    assert source.table.num_rows == 1
    assert clock.sleeps == [37.0, 37.0]
    assert len(transport.requests) == 3


def test_throttling_past_the_deadline_is_an_error():
    throttled = json_response({"error": {"code": "429"}}, 429, {"Retry-After": "400"})
    clock = FakeClock()
    with pytest.raises(InputError, match="deadline"):
        run({None: [throttled]}, clock=clock)
    assert clock.now <= 900


def test_a_client_error_is_reported_with_its_code():
    forbidden = json_response({"error": {"code": "AuthorizationFailed", "message": "no read access"}}, 403)
    with pytest.raises(InputError, match="HTTP 403: AuthorizationFailed no read access"):
        run({None: [forbidden]})


def test_actual_and_amortized_for_the_same_scope_is_an_error():
    transport = RecordedTransport()
    transport.route("POST", QUERY_PATH, sequence(json_response(PAGE_3)))
    collector = collector_for(transport)
    list(collector.collect(CONFIG, PERIOD))
    list(collector.collect(dict(CONFIG, id="again"), PERIOD))  # the same cost type again is fine
    with pytest.raises(InputError, match="double-count"):
        list(collector.collect(dict(CONFIG, id="amortized", cost_type="AmortizedCost"), PERIOD))


def test_schema_requires_cost_type_and_at_most_two_groupings():
    schema = assembled_validator(Collectors(CostQueryCollector()), "source", CostQueryCollector.name)
    schema.validate(CONFIG)
    with pytest.raises(jsonschema.ValidationError):
        schema.validate({k: v for k, v in CONFIG.items() if k != "cost_type"})
    three = dict(CONFIG, group_by=[{"dimension": "ServiceName"}, {"dimension": "ResourceId"}, {"tag": "team"}])
    with pytest.raises(jsonschema.ValidationError):
        schema.validate(three)


def test_restated_costs_get_a_new_version():
    first, _ = run({None: [PAGE_3]})
    again, _ = run({None: [PAGE_3]})
    restated, _ = run({None: [PAGE_3.replace("[100,", "[100.5,")]})
    assert first.version == again.version != restated.version


def test_deadline_seconds_in_the_source_config_bounds_the_whole_collection():
    throttled = json_response({"error": {"code": "429"}}, 429, {"Retry-After": "20"})
    clock = FakeClock()
    with pytest.raises(InputError, match="and the 45s deadline"):
        run({None: [throttled]}, config={**CONFIG, "deadline_seconds": 45}, clock=clock)
    assert 0 < clock.now <= 45 and all(wait >= 20 for wait in clock.sleeps)
