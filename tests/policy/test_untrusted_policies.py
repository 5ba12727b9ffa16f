"""Policies arrive through pull requests: paths stay inside, regexes run in linear time,
fractions are checked at full precision, and what a run would refuse, validate refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeback_engine import validate
from chargeback_engine.errors import InputError, excerpt
from chargeback_engine.policy.match import compile_condition, compile_regex
from chargeback_engine.policy.paths import ROOTS_VARIABLE, contained_path

from .conftest import load_builtin_registry

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {{name: p, version: "1", effective: {{from: 2026-10-01}}}}
spec:
  currency: USD
  unallocated: UNALLOCATED
  cost_centers:
    - {{id: CC-1, name: One}}
    - {{id: CC-2, name: Two}}
    - {{id: CC-9, name: Pool, shared: true}}
    - {{id: UNALLOCATED, name: Unallocated}}
  drivers:
    seats: {{file: {driver}}}
  rules:
    - id: r
      priority: 10
      when: {{tags.team: {{regex: {regex}}}}}
      allocate: {{method: fixed, splits: {splits}}}
    - id: d
      priority: 5
      when: {{ServiceName: x}}
      allocate: {{method: proportional, driver: seats}}
  stages:
    - {{pool: CC-9, allocate: {stage}}}
"""

GOOD = {"driver": "seats.csv", "regex": "'(a+)+$'", "splits": "{CC-1: 0.5, CC-2: 0.5}", "stage": "{method: even}"}


def messages(folder: Path, **changes: str) -> list[str]:
    (folder / "seats.csv").write_text("period,cost_center,quantity\n2026-10,CC-1,1\n")
    path = folder / "policy.yaml"
    path.write_text(POLICY.format(**{**GOOD, **changes}))
    return [f"{d.path}: {d.message}" for d in validate([path], load_builtin_registry()) if d.severity == "error"]


def test_the_base_policy_is_valid(tmp_path: Path) -> None:
    assert messages(tmp_path) == []


@pytest.mark.parametrize("driver", ["../seats.csv", "/etc/passwd", "sub/../../seats.csv"])
def test_a_driver_file_outside_the_policy_folder_is_refused(tmp_path: Path, driver: str) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (tmp_path / "seats.csv").write_text("SECRET-TOKEN-abc123\n")
    found = messages(folder, driver=f"'{driver}'")
    assert found == [
        f"$.spec.drivers.seats.file: driver file {driver!r} is outside the policy's folder ({folder}); "
        f"policies may only read files beside them, or under a folder listed in {ROOTS_VARIABLE}"
    ]


def test_a_symlink_out_of_the_folder_is_refused_and_an_allowed_root_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, shared = tmp_path / "policies", tmp_path / "shared"
    folder.mkdir()
    shared.mkdir()
    (shared / "seats.csv").write_text("period,cost_center,quantity\n")
    (folder / "link.csv").symlink_to(shared / "seats.csv")
    assert [m.split(":")[0] for m in messages(folder, driver="link.csv")] == ["$.spec.drivers.seats.file"]
    monkeypatch.setenv(ROOTS_VARIABLE, str(shared))
    assert messages(folder, driver="link.csv") == []
    assert contained_path(folder / "policy.yaml", str(shared / "seats.csv")) == shared / "seats.csv"
    with pytest.raises(InputError, match="outside the policy's folder"):
        contained_path(folder / "policy.yaml", "/etc/passwd")


def test_a_catastrophic_regex_runs_in_linear_time() -> None:
    condition = compile_condition({"tags.team": {"regex": "(a+)+$"}})
    assert condition.matches({"tags.team": "a" * 100_000 + "!"}) is False  # backtracking would never finish
    assert condition.matches({"tags.team": "a" * 100_000}) is True


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        (r"'(a)\1'", "invalid escape sequence"),
        ("'(?=a)a'", "invalid perl operator"),
        ("'(?<!a)b'", "invalid perl operator"),
    ],
)
def test_a_regex_that_needs_backtracking_is_refused_at_validation(tmp_path: Path, regex: str, reason: str) -> None:
    (found,) = messages(tmp_path, regex=regex)
    assert found.startswith("$.spec.rules[0].when['tags.team'].regex: ")
    assert f"needs a backtracking regex engine ({reason}" in found and "rewrite it without backreferences" in found


def test_compile_regex_says_why() -> None:
    with pytest.raises(ValueError, match=r"is not a valid regular expression \(missing \]"):
        compile_regex("[")
    assert compile_regex(r"prod-\d+").fullmatch("prod-12")


def test_fractions_are_summed_at_full_precision(tmp_path: Path) -> None:
    assert messages(tmp_path, splits="{CC-1: 0.5000000000000000000000000001, CC-2: 0.5}") == [
        "$.spec.rules[0].allocate.splits: fractions sum to 1.0000000000000000000000000001, not exactly 1"
    ]
    assert messages(tmp_path, splits="{CC-1: 0.1, CC-2: 0.2, CC-9: 0.7}") == []


def test_amortized_in_a_stage_is_refused_by_validate(tmp_path: Path) -> None:
    assert messages(tmp_path, stage="{method: amortized, months: 3, then: {method: even}}") == [
        "$.spec.stages[0].allocate.method: stage for pool 'CC-9' cannot use method 'amortized': a stage moves "
        "a pool's cost within its period; amortize the line items in a rule instead"
    ]


def test_an_excerpt_is_short_and_escaped() -> None:
    assert excerpt("SECRET\n" * 40) == repr(("SECRET\n" * 40)[:32] + "…")
    assert excerpt("12x") == "'12x'"


def test_a_run_against_a_crafted_tag_value_finishes(tmp_path: Path) -> None:
    """The reported hang: ``(a+)+$`` against ``'a' * 40 + '!'``, through the whole engine."""
    from decimal import Decimal

    from chargeback_engine import Engine
    from chargeback_engine.testing import line_items

    messages(tmp_path)  # writes the policy and its driver file
    items = line_items(
        {"EffectiveCost": "10", "Tags": {"team": "a" * 40 + "!"}}, {"EffectiveCost": "4", "Tags": {"team": "aaaa"}}
    )
    result = Engine(tmp_path / "policy.yaml").run([items], "2026-10")
    totals = {cc: amount for cc, _, amount in result.summary()}
    assert totals["UNALLOCATED"] == Decimal(10)  # no rule matched the crafted value
    assert totals["CC-1"] + totals["CC-2"] == Decimal(4)  # the fixed split took the matching one
