"""One deadline for a whole collection, and the standard AWS retry settings, offline.

botocore's Stubber answers every call; the clock is :class:`FakeClock`, so the waits are
checked without waiting.
"""

from __future__ import annotations

import random

import pytest
from botocore.stub import Stubber
from chargeback_aws.clients import default_client
from chargeback_aws.cost_explorer import CostExplorerCollector
from test_aws_cost_explorer import CONFIG, PAGE_1, PAGE_3, PERIOD, REQUEST, factory, stubbed

from chargeback_engine.plugin import InputError, RetryPolicy
from chargeback_engine.testing import Collectors, FakeClock, assembled_validator


def throttled(stubber: Stubber, times: int, params: dict | None = REQUEST) -> None:
    for _ in range(times):
        stubber.add_client_error(
            "get_cost_and_usage", "ThrottlingException", "Rate exceeded", 400, expected_params=params
        )


def test_the_deadline_covers_every_call_of_a_collection() -> None:
    """Two pages, each retried for a while: each call alone stays under the deadline, the
    collection does not, so it fails; a per-call deadline would have let it run on."""
    client, stubber = stubbed([])
    throttled(stubber, 6)
    stubber.add_response("get_cost_and_usage", dict(PAGE_1, NextPageToken="token-2"), REQUEST)
    throttled(stubber, 200, None)
    clock = FakeClock()
    collector = CostExplorerCollector(
        client_factory=factory(client), retry=RetryPolicy(clock=clock, rng=random.Random(3))
    )
    with pytest.raises(InputError, match=r"GetCostAndUsage: still failing after \d+ attempts and the 90s deadline"):
        list(collector.collect({**CONFIG, "deadline_seconds": 90}, PERIOD))
    assert clock.now <= 90
    first_page_waits = clock.sleeps[:6]
    assert 0 < sum(first_page_waits) < 90  # the first call did use part of the budget


def test_a_collection_that_starts_past_its_deadline_makes_no_call() -> None:
    clock = FakeClock()
    retry = RetryPolicy(clock=clock).begin(10)
    clock.sleep(11)
    with pytest.raises(InputError, match="not attempted, the collection's 10s deadline has passed"):
        retry.call(lambda: 1, retry_after=lambda exc: 0.0, what="aws-cost-explorer: GetCostAndUsage")


def test_deadline_seconds_is_validated_by_the_schema() -> None:
    import jsonschema

    schema = assembled_validator(Collectors(CostExplorerCollector()), "source", "aws-cost-explorer")
    schema.validate({**CONFIG, "deadline_seconds": 30})
    with pytest.raises(jsonschema.ValidationError):
        schema.validate({**CONFIG, "deadline_seconds": 0})


def test_aws_max_attempts_caps_the_attempts_of_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    client, stubber = stubbed([])
    throttled(stubber, 5)
    stubber.add_response("get_cost_and_usage", PAGE_3, REQUEST)
    clock = FakeClock()
    collector = CostExplorerCollector(
        client_factory=factory(client), retry=RetryPolicy(clock=clock, rng=random.Random(5))
    )
    with pytest.raises(InputError, match=r"still failing after 3 attempts \(at most 3\): ClientError"):
        list(collector.collect(CONFIG, PERIOD))
    assert len(clock.sleeps) == 2


def test_without_aws_max_attempts_the_deadline_alone_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    client, stubber = stubbed([])
    throttled(stubber, 5)
    stubber.add_response("get_cost_and_usage", PAGE_3, REQUEST)
    clock = FakeClock()
    collector = CostExplorerCollector(
        client_factory=factory(client), retry=RetryPolicy(clock=clock, rng=random.Random(5))
    )
    [source] = collector.collect(CONFIG, PERIOD)
    assert source.table.num_rows == 1 and len(clock.sleeps) == 5


@pytest.mark.parametrize("mode", ["standard", "adaptive", "legacy"])
def test_aws_retry_mode_reaches_botocore_and_its_own_retries_stay_off(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", mode)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    client = default_client("ce", "us-east-1")
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": mode}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AWS_RETRY_MODE", "sometimes", "AWS_RETRY_MODE .* is 'sometimes'; expected legacy, standard or adaptive"),
        ("AWS_MAX_ATTEMPTS", "zero", "AWS_MAX_ATTEMPTS .* is 'zero'; expected a whole number of at least 1"),
    ],
)
def test_a_malformed_aws_retry_setting_is_a_sentence(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    collector = CostExplorerCollector()
    with pytest.raises(InputError, match=message):
        list(collector.collect(CONFIG, PERIOD))
