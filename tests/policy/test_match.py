"""The match language, tag normalisation and missing-tag semantics (documented in docs/policy-reference.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine.errors import ChargebackError, InputError
from chargeback_engine.policy.match import TagCollision, TagNormalizer, compile_condition, covers


def matches(when: dict[str, Any], key: dict[str, str | None], tags: TagNormalizer | None = None) -> bool:
    return compile_condition(when, tags).matches(key)


RDS = {"ServiceName": "Amazon RDS", "tags.team": "backend", "tags.env": None}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"ServiceName": "Amazon RDS"}, True),
        ({"ServiceName": "amazon rds"}, False),  # FOCUS values compare exactly
        ({"ServiceName": {"equals": "Amazon RDS"}}, True),
        ({"ServiceName": {"in": ["Amazon EC2", "Amazon RDS"]}}, True),
        ({"ServiceName": {"in": ["Amazon EC2"]}}, False),
        ({"ServiceName": {"not_in": ["Amazon EC2"]}}, True),
        ({"ServiceName": {"not_in": ["Amazon RDS"]}}, False),
        ({"ServiceName": {"regex": "Amazon .*"}}, True),
        ({"ServiceName": {"regex": "Amazon"}}, False),  # a regex must match the whole value
        ({"ServiceName": {"exists": True}}, True),
        ({"tags.team": "backend", "ServiceName": "Amazon RDS"}, True),  # all fields must hold
        ({"tags.team": "backend", "ServiceName": "Amazon EC2"}, False),
        ({"any": [{"tags.team": "frontend"}, {"ServiceName": "Amazon RDS"}]}, True),
        ({"any": [{"tags.team": "frontend"}, {"ServiceName": "Amazon EC2"}]}, False),
        ({"all": [{"tags.team": "backend"}, {"not": {"ServiceName": "Amazon EC2"}}]}, True),
        ({"not": {"tags.team": "backend"}}, False),
        ({}, True),  # an empty condition matches everything
    ],
)
def test_operators(when: dict[str, Any], expected: bool) -> None:
    assert matches(when, RDS) is expected


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        ("production", False),
        ({"equals": "production"}, False),
        ({"in": ["production", ""]}, False),
        ({"regex": ".*"}, False),  # not even a match-anything regex
        ({"not_in": ["production"]}, True),
        ({"exists": False}, True),
        ({"exists": True}, False),
    ],
)
def test_a_missing_tag_equals_nothing_but_satisfies_not_in_and_exists_false(matcher: Any, expected: bool) -> None:
    normalizer = TagNormalizer()
    for tags in ({}, {"env": ""}, {"env": "   "}, {"env": None}):  # absent, empty, blank, null: all missing
        key = {f"tags.{k}": v for k, v in normalizer.normalize(tags).items()}
        assert matches({"tags.env": matcher}, key) is expected, tags


def test_not_of_a_condition_on_a_missing_tag_is_true() -> None:
    assert matches({"not": {"tags.env": "production"}}, {}) is True


def test_null_focus_columns_behave_like_missing_tags() -> None:
    assert matches({"RegionId": {"not_in": ["us-east-1"]}}, {"RegionId": None}) is True
    assert matches({"RegionId": {"regex": ".*"}}, {"RegionId": None}) is False


def test_policy_values_compare_as_text() -> None:
    assert matches({"tags.shared": True}, {"tags.shared": "true"})
    assert matches({"tags.tier": 2}, {"tags.tier": "2"})


class TestTagNormalisation:
    def test_keys_are_lowercased_and_stripped_values_stripped(self) -> None:
        assert TagNormalizer().normalize({" Cost-Center ": " CC-1 ", "Env": "Prod"}) == {
            "cost-center": "CC-1",
            "env": "Prod",
        }

    def test_keys_can_keep_their_case_and_whitespace(self) -> None:
        assert TagNormalizer(keys="preserve", strip=False).normalize({" Env": " x "}) == {" Env": " x "}

    def test_unicode_is_nfc_for_keys_and_values(self) -> None:
        decomposed = {"E\u0301quipe": "cafe\u0301"}  # 'E' / 'e' followed by a combining acute accent
        normalized = TagNormalizer().normalize(decomposed)
        assert normalized == {"\u00e9quipe": "caf\u00e9"}
        key = {f"tags.{k}": v for k, v in normalized.items()}
        assert matches({"tags.\u00c9quipe": "caf\u00e9"}, key)  # written composed in the policy

    def test_aliases_map_source_keys_to_canonical_keys(self) -> None:
        tags = TagNormalizer(aliases={"costcenter": "cost-center", "owner": "team"})
        assert tags.normalize({"CostCenter": "CC-1", "Owner": "data"}) == {"cost-center": "CC-1", "team": "data"}

    def test_a_condition_on_a_tag_is_normalised_like_the_data(self) -> None:
        tags = TagNormalizer(aliases={"costcenter": "cost-center"})
        key = {f"tags.{k}": v for k, v in tags.normalize({"CostCenter ": " CC-1"}).items()}
        assert matches({"tags.CostCenter": "CC-1"}, key, tags)
        assert matches({"tags. cost-center": " CC-1 "}, key, tags)

    def test_on_collision_prefer_exact_keeps_the_key_already_canonical(self) -> None:
        tags = TagNormalizer(aliases={"costcenter": "cost-center"})
        assert tags.normalize({"CostCenter": "CC-1", "cost-center": "CC-2"}) == {"cost-center": "CC-2"}
        assert tags.normalize({"cost-center": "CC-2", "CostCenter": "CC-1"}) == {"cost-center": "CC-2"}

    def test_on_collision_prefer_exact_without_an_exact_key_takes_the_smallest_source_key(self) -> None:
        assert TagNormalizer().normalize({"Team": "a", "TEAM": "b", "team ": "c"}) == {"team": "b"}

    def test_on_collision_error_names_the_keys_and_is_a_chargeback_input_error(self) -> None:
        tags = TagNormalizer(on_collision="error")
        with pytest.raises(TagCollision, match="tag keys 'TEAM', 'Team' all normalise to 'team'") as raised:
            tags.normalize({"Team": "a", "TEAM": "b"})
        assert isinstance(raised.value, InputError) and isinstance(raised.value, ChargebackError)

    def test_a_missing_value_does_not_collide(self) -> None:
        assert TagNormalizer(on_collision="error").normalize({"Team": "", "team": "a"}) == {"team": "a"}


# --- covers(): the shadowing check is sound -------------------------------------------------

VALUES = ["a", "b", "c"]
FIELDS = ["ServiceName", "tags.team"]

matchers = st.one_of(
    st.sampled_from(VALUES),
    st.builds(lambda v: {"in": v}, st.lists(st.sampled_from(VALUES), min_size=1, max_size=3, unique=True)),
    st.builds(lambda v: {"not_in": v}, st.lists(st.sampled_from(VALUES), min_size=1, max_size=3, unique=True)),
    st.builds(lambda v: {"exists": v}, st.booleans()),
    st.sampled_from([{"regex": "a|b"}, {"regex": "[bc]"}, {"regex": ".*"}]),
)
leaf = st.dictionaries(st.sampled_from(FIELDS), matchers, max_size=2)
conditions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda parts: {"any": parts}, st.lists(inner, min_size=1, max_size=2)),
        st.builds(lambda part: {"not": part}, inner),
        st.builds(lambda parts: {"all": parts}, st.lists(inner, min_size=1, max_size=2)),
    ),
    max_leaves=4,
)
ALL_KEYS = [{"ServiceName": s, "tags.team": t} for s in [*VALUES, None] for t in [*VALUES, None]]


@given(conditions, conditions)
def test_covers_is_sound(broader: dict[str, Any], narrower: dict[str, Any]) -> None:
    b, n = compile_condition(broader), compile_condition(narrower)
    if covers(b, n):
        assert all(b.matches(k) for k in ALL_KEYS if n.matches(k))


@pytest.mark.parametrize(
    ("broader", "narrower", "expected"),
    [
        ({}, {"ServiceName": "a"}, True),
        ({"ServiceName": "a"}, {"ServiceName": "a", "tags.team": "b"}, True),
        ({"ServiceName": {"in": ["a", "b"]}}, {"ServiceName": "a"}, True),
        ({"ServiceName": {"in": ["a", "b"]}}, {"ServiceName": {"in": ["a", "c"]}}, False),
        ({"ServiceName": {"exists": True}}, {"ServiceName": {"regex": "a.*"}}, True),
        ({"ServiceName": {"not_in": ["a"]}}, {"ServiceName": {"exists": False}}, True),
        ({"ServiceName": {"regex": "a|b"}}, {"ServiceName": {"in": ["a", "b"]}}, True),
        ({"tags.team": "a"}, {"ServiceName": "a"}, False),
        ({"any": [{"ServiceName": "a"}]}, {"ServiceName": "a"}, False),  # sound subset: any/not never cover
        ({"ServiceName": "a"}, {"ServiceName": "a", "not": {"tags.team": "b"}}, True),
    ],
)
def test_covers_examples(broader: dict[str, Any], narrower: dict[str, Any], expected: bool) -> None:
    assert covers(compile_condition(broader), compile_condition(narrower)) is expected
