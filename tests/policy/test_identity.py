"""Policy identity (version, canonical content hash) and effective dating."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from chargeback_engine import Period, PeriodError, load_policies
from chargeback_engine.canonical import canonical_json
from chargeback_engine.plugins import Registry
from chargeback_engine.policy.policy_model import content_hash

from .conftest import VALID_POLICY

Write = Callable[..., Path]

SAME_CONTENT_REWRITTEN = """\
# The same policy as VALID_POLICY: comments, quoting, flow/block style, key order and
# number spelling differ; the content does not.
kind: AllocationPolicy
apiVersion: "chargeback/v1"
metadata:
  version: '2026.11.1'   # stamped on every decision
  name: acme
  effective:
    from: "2026-11-01"
spec:
  cost_column: EffectiveCost
  currency: USD
  tags:
    aliases:
      costcenter: cost-center
    normalize: {strip: true, keys: lower}
  cost_centers:
    - id: CC-2001
      name: Backend
    - {name: Frontend, id: CC-2002}
    - {id: CC-9000, name: "Shared platform", shared: true}
  drivers:
    cpu-hours:
      inline: [{period: "2026-11", cost_center: CC-2001, quantity: 10.0}]
  rules:
    - id: prod-backend
      priority: 100
      when:
        tags.team: backend
        tags.environment: production
      allocate: {cost_center: CC-2001, method: to-one}
    - {id: platform, priority: 90, when: {tags.team: platform},
       allocate: {method: weights, splits: {CC-2002: 0.6, CC-2001: 0.4}}}
    - id: databases
      priority: 80
      when: {ServiceName: {in: ["Amazon RDS"]}}
      allocate: {method: driven, driver: cpu-hours}
    - id: upfront
      priority: 70
      when: {ChargeCategory: Purchase}
      allocate:
        method: later
        months: 12
        then: {method: to-one, cost_center: CC-9000}
  stages:
    - pool: CC-9000
      allocate: {method: weights, splits: {CC-2001: 0.50, CC-2002: 0.5}}
"""


def load_one(path: Path, registry: Registry):  # type: ignore[no-untyped-def]
    (policy,) = load_policies([path], registry).policies
    return policy


def test_comments_layout_quoting_and_key_order_do_not_change_the_hash(write: Write, registry: Registry) -> None:
    original = load_one(write(VALID_POLICY, "a.yaml"), registry)
    rewritten = load_one(write(SAME_CONTENT_REWRITTEN, "b.yaml"), registry)
    assert original.content_hash == rewritten.content_hash
    assert original.content_hash.startswith("sha256:") and len(original.content_hash) == 7 + 64


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("0.40, CC-2002: 0.60", "0.45, CC-2002: 0.55"),  # a number
        ("priority: 90", "priority: 91"),
        ('version: "2026.11.1"', 'version: "2026.11.2"'),
        ("tags.team: platform", "tags.team: Platform"),  # a value's case
    ],
)
def test_any_content_change_changes_the_hash(write: Write, registry: Registry, old: str, new: str) -> None:
    original = load_one(write(VALID_POLICY, "a.yaml"), registry)
    changed = load_one(write(VALID_POLICY.replace(old, new), "b.yaml"), registry)
    assert original.content_hash != changed.content_hash


def test_list_order_counts_but_mapping_order_does_not() -> None:
    assert content_hash({"a": [1, 2], "b": 1}) == content_hash({"b": 1, "a": [1, 2]})
    assert content_hash({"a": [1, 2]}) != content_hash({"a": [2, 1]})


def test_canonical_json_writes_exact_numbers_and_keeps_types_apart() -> None:
    assert (
        canonical_json({"b": Decimal("0.40"), "a": [Decimal("1E+1"), 7, Decimal("-0.0")]}) == '{"a":[10,7,0],"b":0.4}'
    )
    assert canonical_json({"x": "1"}) != canonical_json({"x": 1})
    assert canonical_json({"x": True, "y": None, "z": "caf\u00e9"}) == '{"x":true,"y":null,"z":"caf\u00e9"}'


def test_policy_version_and_hash_are_on_the_policy_and_the_set(write: Write, registry: Registry) -> None:
    november = write(VALID_POLICY.replace("{from: 2026-11-01}", "{from: 2026-11-01, until: 2027-01-01}"), "a.yaml")
    january = write(
        VALID_POLICY.replace("name: acme", "name: acme-2027")
        .replace('"2026.11.1"', '"2027.1.0"')
        .replace("2026-11-01", "2027-01-01"),
        "b.yaml",
    )
    policy_set = load_policies([november, january], registry)
    assert policy_set.version == "acme@2026.11.1+acme-2027@2027.1.0"
    reversed_set = load_policies([january, november], registry)
    assert reversed_set.content_hash == policy_set.content_hash
    assert policy_set.for_period(Period(2026, 12)).version == "2026.11.1"
    assert policy_set.for_period(Period(2027, 1)).version == "2027.1.0"
    assert policy_set.for_period(Period(2030, 6)).name == "acme-2027"


def test_a_period_before_every_policy_is_a_period_error(write: Write, registry: Registry) -> None:
    policy_set = load_policies([write(VALID_POLICY)], registry)
    with pytest.raises(PeriodError, match="no policy is effective for period 2026-10"):
        policy_set.for_period(Period(2026, 10))


def test_until_is_exclusive(write: Write, registry: Registry) -> None:
    path = write(VALID_POLICY.replace("{from: 2026-11-01}", "{from: 2026-11-01, until: 2026-12-01}"))
    policy_set = load_policies([path], registry)
    assert policy_set.for_period(Period(2026, 11)).name == "acme"
    with pytest.raises(PeriodError):
        policy_set.for_period(Period(2026, 12))
