"""The built-in allocators one by one: their checks, targets and resolutions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chargeback_engine.components import Amortize, DirectCostBasis, Shares
from chargeback_engine.engine.kernel import Kernel, integer_weights
from chargeback_engine.periods import Period
from chargeback_engine.policy.policy_model import AllocationSpec
from tests.engine.helpers import make_policy

POLICY = make_policy(
    {
        "cost_centers": [{"id": "CC-1"}, {"id": "CC-2"}, {"id": "CC-3"}, {"id": "POOL", "shared": True}],
        "drivers": {
            "cpu": {
                "inline": [
                    {"period": "2026-10", "cost_center": "CC-1", "quantity": 3},
                    {"period": "2026-10", "cost_center": "CC-2", "quantity": 1},
                ]
            },
            "idle": {"inline": [{"period": "2026-10", "cost_center": "CC-1", "quantity": 0}]},
            "last-month": {"inline": [{"period": "2026-09", "cost_center": "CC-1", "quantity": 5}]},
        },
        "rules": [],
    }
)


def resolve(registry, block: dict, key: dict | None = None):  # type: ignore[no-untyped-def]
    kernel = Kernel(POLICY, registry, Period(2026, 10))
    from chargeback_engine.engine.kernel import _Context

    return kernel.resolve(AllocationSpec.from_document(block), _Context(kernel, key or {}))


def findings(registry, block: dict) -> list[str]:  # type: ignore[no-untyped-def]
    params = {k: v for k, v in block.items() if k != "method"}
    return [
        f"{'.'.join(map(str, f.path))}: {f.message}" for f in registry.allocator(block["method"]).check(params, POLICY)
    ]


def test_fixed_fractions_are_summed_as_decimals_not_floats(registry) -> None:  # type: ignore[no-untyped-def]
    assert 0.7 + 0.2 + 0.1 != 1.0  # what a float check would get wrong
    assert findings(registry, {"method": "fixed", "splits": {"CC-1": 0.7, "CC-2": 0.2, "CC-3": 0.1}}) == []
    assert findings(registry, {"method": "fixed", "splits": {"CC-1": 0.5, "CC-2": "0.4"}}) == [
        "splits: fractions sum to 0.9, not exactly 1"
    ]


def test_unknown_cost_centers_are_named_where_they_are_written(registry) -> None:  # type: ignore[no-untyped-def]
    assert [f.split(":")[0] for f in findings(registry, {"method": "fixed", "splits": {"CC-1": 0.5, "CC-9": 0.5}})] == [
        "splits.CC-9"
    ]
    assert [f.split(":")[0] for f in findings(registry, {"method": "even", "among": ["CC-1", "CC-X"]})] == ["among.1"]
    assert [f.split(":")[0] for f in findings(registry, {"method": "direct", "cost_center": "NOPE"})] == ["cost_center"]
    assert [f.split(":")[0] for f in findings(registry, {"method": "tag", "keys": ["team"], "fallback": "NOPE"})] == [
        "fallback"
    ]
    assert [
        f.split(":")[0] for f in findings(registry, {"method": "proportional", "driver": "cpu", "among": ["X"]})
    ] == ["among.0"]


def test_targets_name_the_cost_centers_written_in_the_block(registry) -> None:  # type: ignore[no-untyped-def]
    assert registry.allocator("fixed").targets({"splits": {"CC-1": 0.5, "CC-2": 0.5}}, POLICY) == {"CC-1", "CC-2"}
    assert registry.allocator("direct").targets({"cost_center": "CC-3"}, POLICY) == {"CC-3"}
    assert registry.allocator("tag").targets({"keys": ["t"], "map": {"a": "CC-1"}, "fallback": "CC-2"}, POLICY) == {
        "CC-1",
        "CC-2",
    }


def test_tag_walks_the_key_hierarchy_and_says_why(registry) -> None:  # type: ignore[no-untyped-def]
    block = {"method": "tag", "keys": ["cost-center", "team", "project"], "map": {"web": "CC-1"}, "fallback": "CC-3"}
    assert resolve(registry, block, {"tags.cost-center": "CC-2"}) == Shares({"CC-2": 1}, "tag cost-center = 'CC-2'")
    shares = resolve(registry, block, {"tags.project": "web"})
    assert shares.weights == {"CC-1": 1}
    assert shares.reason == "tag cost-center missing, tag team missing, fell back to project"
    shares = resolve(registry, block, {"tags.team": "nobody"})
    assert shares.weights == {"CC-3": 1}
    assert "tag team value 'nobody' is not a cost center" in shares.reason and shares.reason.endswith(
        "fell back to CC-3"
    )


def test_proportional_by_driver_and_its_zero_weight_fallbacks(registry) -> None:  # type: ignore[no-untyped-def]
    assert resolve(registry, {"method": "proportional", "driver": "cpu"}).weights == {"CC-1": 3, "CC-2": 1}
    even = resolve(
        registry, {"method": "proportional", "driver": "idle", "among": ["CC-1", "CC-2"], "fallback": "even"}
    )
    assert even.weights == {"CC-1": 1, "CC-2": 1} and even.reason.endswith("fell back to even split")
    parked = resolve(registry, {"method": "proportional", "driver": "idle"})
    assert parked.weights == {"UNALLOCATED": 1} and parked.reason.endswith("fell back to unallocated")
    assert (
        parked.reason == "driver idle has no positive quantity for 2026-10 (fallback: unallocated), "
        "fell back to unallocated"
    )


def test_a_driver_without_rows_for_the_period_takes_the_declared_fallback(registry) -> None:  # type: ignore[no-untyped-def]
    even = resolve(registry, {"method": "proportional", "driver": "last-month", "fallback": "even"})
    assert even.weights == {"CC-1": 1, "CC-2": 1, "CC-3": 1}  # the consumers: no pool, no unallocated bucket
    assert (
        even.reason == "driver last-month has no rows for 2026-10 (fallback: even, among 3 cost centers), "
        "fell back to even split"
    )
    among = resolve(
        registry, {"method": "proportional", "driver": "last-month", "among": ["CC-2", "CC-3"], "fallback": "even"}
    )
    assert among.weights == {"CC-2": 1, "CC-3": 1}
    parked = resolve(registry, {"method": "proportional", "driver": "last-month"})
    assert parked.weights == {"UNALLOCATED": 1}
    assert (
        parked.reason == "driver last-month has no rows for 2026-10 (fallback: unallocated), fell back to unallocated"
    )


def test_proportional_by_direct_cost_is_deferred_until_direct_allocation(registry) -> None:  # type: ignore[no-untyped-def]
    basis = resolve(
        registry, {"method": "proportional", "basis": "direct-cost", "filter": {"ServiceCategory": "Compute"}}
    )
    assert isinstance(basis, DirectCostBasis) and basis.targets is None and basis.filter is not None


def test_even_defaults_to_every_consumer(registry) -> None:  # type: ignore[no-untyped-def]
    assert resolve(registry, {"method": "even"}).weights == {"CC-1": 1, "CC-2": 1, "CC-3": 1}


def test_tiered_picks_the_tier_by_column_or_tag(registry) -> None:  # type: ignore[no-untyped-def]
    block = {
        "method": "tiered",
        "by": "tags.tier",
        "tiers": {"gold": {"method": "direct", "cost_center": "CC-1"}},
        "default": {"method": "even", "among": ["CC-2", "CC-3"]},
    }
    assert resolve(registry, block, {"tags.tier": "gold"}).reason == "tier gold: direct to CC-1"
    assert resolve(registry, block, {}).weights == {"CC-2": 1, "CC-3": 1}
    by_column = {"method": "tiered", "by": "ServiceName", "tiers": {"S3": {"method": "direct", "cost_center": "CC-2"}}}
    assert resolve(registry, by_column, {"ServiceName": "S3"}).weights == {"CC-2": 1}
    assert resolve(registry, by_column, {"ServiceName": "EC2"}).weights == {"UNALLOCATED": 1}


def test_amortized_carries_its_schedule_and_nested_method(registry) -> None:  # type: ignore[no-untyped-def]
    result = resolve(
        registry, {"method": "amortized", "months": 12, "then": {"method": "direct", "cost_center": "CC-1"}}
    )
    assert isinstance(result, Amortize) and result.months == 12 and result.then.weights == {"CC-1": 1}
    term = resolve(registry, {"method": "amortized", "months": "commitment-term", "then": {"method": "even"}})
    assert term.months is None


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"B": Decimal("0.4"), "A": Decimal("0.6")}, (("A", 3), ("B", 2))),
        ({"A": Decimal("1E+2"), "B": Decimal("0")}, (("A", 1),)),
        ({"A": Decimal("0.0000000001"), "B": Decimal("7")}, (("A", 1), ("B", 70000000000))),
    ],
)
def test_integer_weights_are_exact_reduced_and_sorted(weights, expected) -> None:  # type: ignore[no-untyped-def]
    assert integer_weights(weights) == expected
