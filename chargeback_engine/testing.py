"""Test helpers for plugin authors (public API; needs pytest, from the ``test`` extra).

- :func:`make_plugin_manager` and :func:`make_registry`: a manager or registry holding only
  the plugins you pass, never what happens to be installed.
- :func:`line_items`: a FOCUS cost table from a few dicts, with defaults for the required
  columns and exact decimals.
- :func:`make_policy`: a small valid policy to check allocator parameters against.
- :class:`CollectorContract` and :class:`AllocatorContract`: subclass one in your test
  module and pytest runs every check a component must pass to work inside the engine.

See ``docs/testing-plugins.md`` for a worked example.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from jsonschema import Draft202012Validator

from chargeback_engine.components import CollectedSource, Finding
from chargeback_engine.errors import InputError
from chargeback_engine.focus import COST_TABLE_SCHEMA, MONEY_COLUMNS, REQUIRED_COLUMNS
from chargeback_engine.periods import Period
from chargeback_engine.plugins import (
    KEBAB_CASE,
    PluginManager,
    Registry,
    build_registry,
    check_pending,
    get_plugin_manager,
    register_plugin,
)
from chargeback_engine.policy.build import build_policy
from chargeback_engine.policy.model import AllocationSpec, Policy, SourceLocation

__all__ = [
    "AllocatorContract",
    "CollectorContract",
    "line_items",
    "make_plugin_manager",
    "make_policy",
    "make_registry",
]


def make_plugin_manager(*plugins: object) -> PluginManager:
    """A plugin manager with exactly ``plugins`` registered and no entry points loaded.

    Each plugin is a module or an object with ``@hookimpl`` functions; it is registered
    under its ``__name__`` (modules, classes) or its class name (instances).
    """
    pm = get_plugin_manager(load_entry_points=False)
    for plugin in plugins:
        register_plugin(pm, plugin, getattr(plugin, "__name__", type(plugin).__name__))
    check_pending(pm)
    return pm


def make_registry(*plugins: object) -> Registry:
    """The components that exactly ``plugins`` register, validated as the engine validates them."""
    return build_registry(make_plugin_manager(*plugins))


# --- FOCUS line items -------------------------------------------------------------------

_TIMESTAMP_COLUMNS = {f.name for f in COST_TABLE_SCHEMA if pa.types.is_timestamp(f.type)}
_DECIMAL_COLUMNS = {f.name for f in COST_TABLE_SCHEMA if pa.types.is_decimal(f.type)}


def line_items(
    *rows: Mapping[str, Any],
    period: str | Period = "2026-10",
    currency: str = "USD",
    source_id: str = "test-source",
    **common: Any,
) -> pa.Table:
    """A cost table in :data:`~chargeback_engine.focus.COST_TABLE_SCHEMA`, one row per mapping.

    Keys are FOCUS column names; ``common`` columns apply to every row unless the row sets
    them. Defaults: ``BillingCurrency`` is ``currency``; charge and billing periods span
    ``period``; ``BilledCost`` and ``EffectiveCost`` copy each other when only one is
    given; ``x_SourceId`` is ``source_id`` and ``x_SourceRow`` the row's position from 1.
    Money and quantities are ``Decimal``, ``int`` or ``str`` (a float is refused: 0.1 is not
    exact), and more than 10 digits after the point is an error, not a rounding. ``Tags``
    may be a dict; it is stored as canonical JSON text.
    """
    month = period if isinstance(period, Period) else Period.parse(period)
    start, end = _utc(month.start), _utc(month.end)
    defaults = {
        "BillingCurrency": currency,
        "ChargePeriodStart": start,
        "ChargePeriodEnd": end,
        "BillingPeriodStart": start,
        "BillingPeriodEnd": end,
        "x_SourceId": source_id,
    }
    records = []
    for position, row in enumerate(rows, start=1):
        record = {**defaults, "x_SourceRow": position, **common, **row}
        unknown = sorted(set(record) - set(COST_TABLE_SCHEMA.names))
        if unknown:
            raise ValueError(f"line item {position}: {', '.join(unknown)} is not a FOCUS cost-table column")
        if "BilledCost" not in record and "EffectiveCost" not in record:
            raise ValueError(f"line item {position}: give BilledCost or EffectiveCost")
        record.setdefault("BilledCost", record.get("EffectiveCost"))
        record.setdefault("EffectiveCost", record["BilledCost"])
        records.append({name: _cell(name, value, position) for name, value in record.items()})
    columns = [pa.array([r.get(f.name) for r in records], type=f.type) for f in COST_TABLE_SCHEMA]
    return pa.Table.from_arrays(columns, schema=COST_TABLE_SCHEMA)


def _utc(value: date | datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _cell(column: str, value: Any, position: int) -> Any:
    if value is None:
        return None
    if column in _DECIMAL_COLUMNS:
        if isinstance(value, float):
            raise TypeError(f"line item {position}: {column} is a float; use Decimal or str, floats are not exact")
        return Decimal(value)
    if column in _TIMESTAMP_COLUMNS:
        return _utc(value)
    if column == "Tags" and isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return value


# --- Policies ---------------------------------------------------------------------------


def make_policy(
    cost_centers: Sequence[str] = ("CC-1", "CC-2", "CC-3"),
    rules: Sequence[Mapping[str, Any]] = (),
    **spec: Any,
) -> Policy:
    """A small valid policy with the given cost centers and rules (and any other ``spec`` keys)."""
    document = {
        "apiVersion": "chargeback/v1",
        "kind": "AllocationPolicy",
        "metadata": {"name": "test-policy", "version": "1", "effective": {"from": "2000-01-01"}},
        "spec": {"currency": "USD", "cost_centers": [{"id": cc} for cc in cost_centers], "rules": list(rules), **spec},
    }
    return build_policy(document, path="<test-policy>", locate=lambda path: SourceLocation("<test-policy>", 1, 1))


# --- Contracts --------------------------------------------------------------------------


class _ComponentContract:
    """Checks every component kind shares: registered under a kebab-case name, valid schema."""

    kind: ClassVar[str]  # a Registry attribute: "collectors", "allocators", "exporters"
    schema_attribute: ClassVar[str]

    #: The plugin (module or object with ``@hookimpl`` functions) that registers the component.
    plugin: ClassVar[object]
    #: The name the component registers under.
    name: ClassVar[str]

    @pytest.fixture
    def component(self) -> Any:
        return getattr(make_registry(self.plugin), self.kind)[self.name].component

    def test_registers_under_its_name(self) -> None:
        table = getattr(make_registry(self.plugin), self.kind)
        assert self.name in table, f"{self.plugin!r} registers {sorted(table)}, not {self.name!r}"

    def test_name_is_kebab_case(self, component: Any) -> None:
        assert KEBAB_CASE.match(component.name), f"{component.name!r} is not kebab-case"

    def test_schema_is_valid_json_schema_2020_12(self, component: Any) -> None:
        Draft202012Validator.check_schema(dict(getattr(component, self.schema_attribute)))


class CollectorContract(_ComponentContract):
    """Subclass as ``class TestMyCollector(CollectorContract)``; set ``plugin`` and ``name``.

    Override the ``config`` fixture to return one ``sources:`` entry that works in the test
    (pointing at a file in ``tmp_path``, a moto bucket, ...) and ``bad_config`` to one whose
    data is malformed. Set ``period`` to the month it covers and, to pin the amounts,
    ``expected_totals`` to the exact sum per money column.
    """

    kind = "collectors"
    schema_attribute = "config_schema"
    period: ClassVar[Period | None] = None
    expected_totals: ClassVar[Mapping[str, Decimal]] = {}

    @pytest.fixture
    def config(self) -> Mapping[str, Any]:
        pytest.fail("override the `config` fixture with a sources: entry that works in this test")

    @pytest.fixture
    def collected(self, component: Any, config: Mapping[str, Any]) -> list[CollectedSource]:
        return list(component.collect(config, self.period))

    @pytest.fixture
    def bad_config(self) -> Mapping[str, Any]:
        pytest.skip("override the `bad_config` fixture with a sources: entry whose data is malformed")

    def test_bad_input_is_an_input_error(self, component: Any, bad_config: Mapping[str, Any]) -> None:
        with pytest.raises(InputError):
            list(component.collect(bad_config, self.period))

    def test_config_matches_the_schema(self, component: Any, config: Mapping[str, Any]) -> None:
        errors = [e.message for e in Draft202012Validator(dict(component.config_schema)).iter_errors(config)]
        assert not errors, errors

    def test_yields_collected_sources(self, collected: list[CollectedSource]) -> None:
        assert collected, "collect() yielded nothing"
        assert all(isinstance(s, CollectedSource) for s in collected)
        assert all(isinstance(s.source_id, str) and s.source_id for s in collected)
        assert all(isinstance(s.version, str) and s.version for s in collected)
        ids = [s.source_id for s in collected]
        assert len(ids) == len(set(ids)), f"source ids repeat: {ids}"

    def test_tables_conform_to_the_cost_table_schema(self, collected: list[CollectedSource]) -> None:
        for source in collected:
            assert source.table.schema.equals(COST_TABLE_SCHEMA), _schema_diff(source.table.schema)

    def test_required_columns_are_filled(self, collected: list[CollectedSource]) -> None:
        for source in collected:
            for column in (*REQUIRED_COLUMNS, "x_SourceId", "x_SourceRow"):
                assert source.table[column].null_count == 0, f"{source.source_id}: {column} has nulls"

    def test_rows_point_at_their_source(self, collected: list[CollectedSource]) -> None:
        for source in collected:
            assert set(source.table["x_SourceId"].to_pylist()) <= {source.source_id}
            rows = source.table["x_SourceRow"].to_pylist()
            assert len(rows) == len(set(rows)), f"{source.source_id}: x_SourceRow repeats"

    def test_charges_fall_in_the_period(self, collected: list[CollectedSource]) -> None:
        if self.period is None:
            pytest.skip("no period set")
        start, end = _utc(self.period.start), _utc(self.period.end)
        for source in collected:
            starts = source.table["ChargePeriodStart"]
            if len(starts):
                assert pc.min(starts).as_py() >= start and pc.max(starts).as_py() < end

    def test_amounts_are_exact(self, collected: list[CollectedSource]) -> None:
        if not self.expected_totals:
            pytest.skip("no expected_totals set")
        for column, expected in self.expected_totals.items():
            assert column in MONEY_COLUMNS, f"{column} is not a money column"
            total = sum((_sum(s.table[column]) for s in collected), Decimal(0))
            assert total == Decimal(expected), f"{column}: {total} != {expected}"

    def test_collecting_twice_gives_the_same_data(self, component: Any, config: Mapping[str, Any],
                                                  collected: list[CollectedSource]) -> None:
        again = list(component.collect(config, self.period))
        assert [(s.source_id, s.version) for s in again] == [(s.source_id, s.version) for s in collected]
        assert all(a.table.equals(b.table) for a, b in zip(again, collected, strict=True))


class AllocatorContract(_ComponentContract):
    """Subclass as ``class TestMyAllocator(AllocatorContract)``; set ``plugin`` and ``name``.

    ``valid_blocks`` and ``invalid_blocks`` are ``allocate:`` blocks (``method`` included)
    that the allocator must accept and reject; ``policy`` is what they are checked against
    (override it for parameters that name drivers or other policy objects).
    """

    kind = "allocators"
    schema_attribute = "params_schema"
    valid_blocks: ClassVar[Sequence[Mapping[str, Any]]] = ()
    invalid_blocks: ClassVar[Sequence[Mapping[str, Any]]] = ()

    @pytest.fixture
    def policy(self) -> Policy:
        return make_policy()

    def test_has_examples(self) -> None:
        assert self.valid_blocks, "set valid_blocks to at least one allocate: block"
        assert self.invalid_blocks, "set invalid_blocks to at least one allocate: block"

    def test_valid_blocks_pass_schema_and_check(self, component: Any, policy: Policy) -> None:
        validator = Draft202012Validator(dict(component.params_schema))
        for block in self.valid_blocks:
            assert [e.message for e in validator.iter_errors(block)] == [], block
            errors = [f for f in _findings(component, block, policy) if f.severity == "error"]
            assert errors == [], block

    def test_schema_belongs_to_this_method(self, component: Any) -> None:
        validator = Draft202012Validator(dict(component.params_schema))
        for block in self.valid_blocks:
            assert block.get("method") == self.name, f"{block} does not name method {self.name!r}"
            assert not validator.is_valid({**block, "method": self.name + "-other"}), "the schema must pin `method`"

    def test_invalid_blocks_are_rejected(self, component: Any, policy: Policy) -> None:
        validator = Draft202012Validator(dict(component.params_schema))
        for block in self.invalid_blocks:
            if validator.is_valid(block):
                errors = [f for f in _findings(component, block, policy) if f.severity == "error"]
                assert errors, f"neither the schema nor check() rejects {block}"

    def test_findings_are_well_formed(self, component: Any, policy: Policy) -> None:
        validator = Draft202012Validator(dict(component.params_schema))
        for block in [*self.valid_blocks, *(b for b in self.invalid_blocks if validator.is_valid(b))]:
            for finding in _findings(component, block, policy):
                assert isinstance(finding, Finding)
                assert all(isinstance(step, str | int) for step in finding.path), finding
                assert finding.message and finding.severity in ("error", "warning"), finding

    def test_targets_are_cost_centers_of_the_policy(self, component: Any, policy: Policy) -> None:
        known = {cc.id for cc in policy.cost_centers}
        for block in self.valid_blocks:
            targets = component.targets(AllocationSpec.from_document(block).params, policy)
            assert isinstance(targets, frozenset), f"targets() returned {type(targets).__name__}, not frozenset"
            assert targets <= known, f"targets {sorted(targets - known)} are not cost centers of the policy"


def _findings(component: Any, block: Mapping[str, Any], policy: Policy) -> list[Finding]:
    return list(component.check(AllocationSpec.from_document(block).params, policy))


def _sum(column: pa.ChunkedArray) -> Decimal:
    total = pc.sum(column).as_py()
    return Decimal(0) if total is None else total


def _schema_diff(schema: pa.Schema) -> str:
    expected = {f.name: f.type for f in COST_TABLE_SCHEMA}
    actual = {f.name: f.type for f in schema}
    problems = [f"missing {n}" for n in expected if n not in actual]
    problems += [f"unexpected {n}" for n in actual if n not in expected]
    problems += [f"{n} is {actual[n]}, not {t}" for n, t in expected.items() if n in actual and actual[n] != t]
    return "; ".join(problems) or "column order differs from COST_TABLE_SCHEMA (use focus.conform)"
