"""Cost Explorer collector against botocore's Stubber (paging) and moto (the real client path)."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber
from chargeback_aws.clients import default_client
from chargeback_aws.cost_explorer import CostExplorerCollector
from moto import mock_aws

from chargeback_engine.plugin import COST_TABLE_SCHEMA, InputError, Period, RetryPolicy, plain_schema
from chargeback_engine.testing import Collectors, FakeClock, assembled_validator

PERIOD = Period(2026, 10)
CONFIG = {
    "id": "aws-ce",
    "collector": "aws-cost-explorer",
    "group_by": [{"dimension": "LINKED_ACCOUNT"}, {"tag": "team"}],
}
REQUEST = {
    "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
    "Granularity": "DAILY",
    "Metrics": ["UnblendedCost", "AmortizedCost"],
    "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": "team"}],
}
GROUP_DEFINITIONS = [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": "team"}]


def day(n: int, groups: list[tuple[str, str, str, str]], estimated: bool = False) -> dict:
    return {
        "TimePeriod": {"Start": f"2026-10-{n:02d}", "End": f"2026-10-{n + 1:02d}"},
        "Total": {},
        "Groups": [
            {
                "Keys": [account, f"team${team}"],
                "Metrics": {
                    "UnblendedCost": {"Amount": unblended, "Unit": "USD"},
                    "AmortizedCost": {"Amount": amortized, "Unit": "USD"},
                },
            }
            for account, team, unblended, amortized in groups
        ],
        "Estimated": estimated,
    }


def page(results: list[dict], token: str | None = None) -> dict:
    response = {
        "GroupDefinitions": GROUP_DEFINITIONS,
        "ResultsByTime": results,
        "DimensionValueAttributes": [{"Value": "111111111111", "Attributes": {"description": "payments-prod"}}],
    }
    if token:
        response["NextPageToken"] = token
    return response


PAGE_1 = page(
    [
        day(
            1,
            [
                ("111111111111", "payments", "12.3456789012", "10.0000000001"),
                ("222222222222", "", "0.0000000001", "0.0000000001"),
            ],
        )
    ],
    "token-2",
)
PAGE_2 = page(
    [day(2, [("111111111111", "payments", "7.25", "7.25"), ("111111111111", "search", "-1.10", "-1.10")])], "token-3"
)
PAGE_3 = page([day(3, [("222222222222", "search", "100", "99.999")], estimated=True)])


def stubbed(responses: list[tuple[dict, str | None]]):
    client = boto3.client("ce", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stubber = Stubber(client)
    for response, token in responses:
        stubber.add_response("get_cost_and_usage", response, dict(REQUEST, NextPageToken=token) if token else REQUEST)
    stubber.activate()
    return client, stubber


def factory(ce_client):
    """Cost Explorer from the test's stubber; STS answers GetCallerIdentity for the payer account."""

    def client_for(service: str, region: str | None):
        if service == "ce":
            return ce_client
        sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
        stubber = Stubber(sts)
        stubber.add_response(
            "get_caller_identity",
            {"UserId": "AIDAEXAMPLE", "Account": "999999999999", "Arn": "arn:aws:iam::999999999999:user/finops"},
        )
        stubber.activate()
        return sts

    return client_for


def collect(client, config=CONFIG, clock=None):
    retry = RetryPolicy(clock=clock or FakeClock(), rng=random.Random(7))
    collector = CostExplorerCollector(client_factory=factory(client), retry=retry)
    [source] = collector.collect(config, PERIOD)
    return source


def test_three_pages_are_followed_and_amounts_stay_exact():
    client, stubber = stubbed([(PAGE_1, None), (PAGE_2, "token-2"), (PAGE_3, "token-3")])
    source = collect(client)
    stubber.assert_no_pending_responses()
    table = source.table
    assert plain_schema(table.schema) == COST_TABLE_SCHEMA
    assert table.num_rows == 5
    assert sum(table["BilledCost"].to_pylist()) == Decimal("118.4956789013")
    assert source.details["totals"]["EffectiveCost"] == {"USD": "116.149000000200000000"}
    assert source.details["pages"] == 3
    assert source.details["estimated"] == ["2026-10-03"]
    assert table["SubAccountName"].to_pylist()[0] == "payments-prod"
    assert set(table["BillingAccountId"].to_pylist()) == {"999999999999"}


def test_an_empty_tag_value_means_untagged():
    client, _ = stubbed([(page(PAGE_1["ResultsByTime"]), None)])
    source = collect(client)
    assert [json.loads(t) for t in source.table["Tags"].to_pylist()] == [{"team": "payments"}, {}]


def test_a_trailing_empty_page_adds_nothing():
    empty = page([])
    client, _ = stubbed([(dict(PAGE_1, NextPageToken="token-2"), None), (empty, "token-2")])
    source = collect(client)
    assert source.table.num_rows == 2
    assert source.details["pages"] == 2


def test_a_duplicated_page_is_counted_once():
    client, _ = stubbed([(PAGE_1, None), (dict(PAGE_1, NextPageToken="token-3"), "token-2"), (PAGE_3, "token-3")])
    source = collect(client)
    assert source.details["duplicate_pages"] == 1
    assert sum(source.table["BilledCost"].to_pylist()) == Decimal("112.3456789013")


def test_a_token_that_loops_back_is_an_error():
    client, _ = stubbed([(PAGE_1, None), (dict(PAGE_2, NextPageToken="token-2"), "token-2")])
    with pytest.raises(InputError, match="already read"):
        collect(client)


def test_throttling_is_retried_with_jittered_backoff_on_a_fake_clock():
    client, stubber = stubbed([])
    for _ in range(3):
        stubber.add_client_error(
            "get_cost_and_usage", "ThrottlingException", "Rate exceeded", 400, expected_params=REQUEST
        )
    stubber.add_response("get_cost_and_usage", PAGE_3, REQUEST)
    clock = FakeClock()
    source = collect(client, clock=clock)
    assert source.table.num_rows == 1
    assert len(clock.sleeps) == 3
    assert all(0 <= wait <= 2**attempt for attempt, wait in enumerate(clock.sleeps))
    assert len(set(clock.sleeps)) == 3  # jittered, not a fixed schedule


def test_retries_stop_at_the_deadline():
    client, stubber = stubbed([])
    for _ in range(200):
        stubber.add_client_error("get_cost_and_usage", "ThrottlingException", "Rate exceeded", 400)
    clock = FakeClock()
    retry = RetryPolicy(deadline=120, clock=clock, rng=random.Random(1))
    collector = CostExplorerCollector(client_factory=factory(client), retry=retry)
    with pytest.raises(InputError, match="deadline"):
        list(collector.collect(CONFIG, PERIOD))
    assert clock.now <= 120


def test_an_error_retrying_cannot_fix_is_reported_at_once():
    client, stubber = stubbed([])
    stubber.add_client_error("get_cost_and_usage", "AccessDeniedException", "not authorized to ce:GetCostAndUsage")
    clock = FakeClock()
    with pytest.raises(InputError, match="AccessDeniedException"):
        collect(client, clock=clock)
    assert clock.sleeps == []


def test_more_than_two_groupings_are_rejected_by_the_schema():
    import jsonschema

    config = dict(CONFIG, group_by=[{"dimension": "SERVICE"}, {"dimension": "REGION"}, {"tag": "team"}])
    schema = assembled_validator(Collectors(CostExplorerCollector()), "source", "aws-cost-explorer")
    with pytest.raises(jsonschema.ValidationError):
        schema.validate(config)
    schema.validate(CONFIG)


def test_restated_costs_get_a_new_version():
    client, _ = stubbed([(PAGE_3, None)])
    first = collect(client)
    restated = page([day(3, [("222222222222", "search", "100.01", "99.999")])])
    client, _ = stubbed([(restated, None)])
    assert collect(client).version != first.version
    client, _ = stubbed([(PAGE_3, None)])
    assert collect(client).version == first.version


def test_moto_canned_results_through_the_default_client(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import requests

        canned = {
            "results": [
                {
                    "ResultsByTime": [
                        {
                            "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
                            "Total": {
                                "UnblendedCost": {"Amount": "41.0000000003", "Unit": "USD"},
                                "AmortizedCost": {"Amount": "40.5", "Unit": "USD"},
                            },
                            "Groups": [],
                            "Estimated": False,
                        }
                    ]
                }
            ]
        }
        requests.post("http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results", json=canned)
        collector = CostExplorerCollector(client_factory=default_client)
        [source] = collector.collect({"collector": "aws-cost-explorer", "granularity": "MONTHLY"}, PERIOD)
    assert source.table["BilledCost"].to_pylist() == [Decimal("41.0000000003")]
    assert source.table["EffectiveCost"].to_pylist() == [Decimal("40.5")]


def test_default_clients_have_explicit_timeouts_and_leave_retries_to_us(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = default_client("ce", "us-east-1").meta.config
    assert (config.connect_timeout, config.read_timeout) == (10, 60)
    assert config.retries["total_max_attempts"] == 1
