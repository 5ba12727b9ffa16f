"""Test helpers for plugin authors (public API; needs pytest, from the ``test`` extra).

- :func:`make_plugin_manager`, :func:`make_registry` and :func:`make_engine`: a manager,
  registry or engine holding only the plugins you pass (plus the built-ins if you ask),
  never what happens to be installed.
- :func:`make_policy`: a small policy, validated like a policy file, for those plugins.
- :func:`line_items`: a FOCUS cost table from a few dicts, with exact decimals.
- :func:`assembled_validator`: one component's block of the policy schema, as the
  kernel assembles it.
- :class:`Collectors`: a plugin registering collector objects you built (wired to your
  SDK's test doubles), for an engine test through :func:`make_registry`.
- :class:`FakeClock`: a clock for ``RetryPolicy(clock=...)``, so backoff and deadlines are
  tested without waiting.
- :class:`CollectorContract`, :class:`AllocatorContract`, :class:`ExporterContract` and
  :class:`EnricherContract`: subclass one in your test module and pytest runs every check a component must pass to
  work inside the engine.

See ``docs/testing-plugins.md`` for worked examples.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from jsonschema import Draft202012Validator

from chargeback_engine import hookimpl
from chargeback_engine.components import CollectedSource, Collector, Finding
from chargeback_engine.engine.items import build_line_items
from chargeback_engine.engine.result import RunResult
from chargeback_engine.engine.runner import Engine
from chargeback_engine.enrich.model import SCOPES, TagRecord
from chargeback_engine.enrich.snapshots import snapshot_table
from chargeback_engine.errors import ChargebackError, InputError
from chargeback_engine.focus import (
    COST_TABLE_SCHEMA,
    MONEY_COLUMNS,
    REQUIRED_COLUMNS,
    plain_schema,
)
from chargeback_engine.periods import Period
from chargeback_engine.plugins import (
    KEBAB_CASE,
    PluginManager,
    Registry,
    build_registry,
    check_pending,
    get_plugin_manager,
    load_builtins,
    register_plugin,
)
from chargeback_engine.policy.loader import load_policies
from chargeback_engine.policy.policy_model import AllocationSpec, Policy
from chargeback_engine.policy.schema import assemble_schema

__all__ = [
    "AllocatorContract",
    "CollectorContract",
    "Collectors",
    "EnricherContract",
    "assembled_validator",
    "ExporterContract",
    "FakeClock",
    "line_items",
    "make_engine",
    "make_plugin_manager",
    "make_policy",
    "make_registry",
]


class Collectors:
    """A plugin registering the given collector objects: ``make_registry(Collectors(mine), builtins=True)``."""

    def __init__(self, *collectors: Collector):
        self.collectors = collectors

    @hookimpl
    def chargeback_register_collectors(self, register: Callable[[Collector], None]) -> None:
        for collector in self.collectors:
            register(collector)


@dataclass
class FakeClock:
    """A clock for tests: ``sleep`` only moves time forward and remembers each wait."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_plugin_manager(*plugins: object, builtins: bool = False) -> PluginManager:
    """A plugin manager with exactly ``plugins`` registered (and the built-ins if ``builtins``).

    Each plugin is a module or an object with ``@hookimpl`` functions; it is registered
    under its ``__name__`` (modules, classes) or its class name (instances). Installed
    third-party plugins and the allow/block environment variables play no part.
    """
    pm = get_plugin_manager(load_entry_points=False)
    if builtins:
        load_builtins(pm)
    for plugin in plugins:
        if not pm.is_registered(plugin):  # a built-in passed explicitly as well
            register_plugin(pm, plugin, getattr(plugin, "__name__", type(plugin).__name__))
    check_pending(pm)
    return pm


def make_registry(*plugins: object, builtins: bool = False) -> Registry:
    """The components that exactly ``plugins`` register, validated as the engine validates them."""
    return build_registry(make_plugin_manager(*plugins, builtins=builtins))


def make_engine(policy: Policy, *plugins: object, builtins: bool = False, **options: Any) -> Engine:
    """An :class:`Engine` for ``policy`` whose components come only from ``plugins``.

    Observer hooks of those plugins are called too. ``options`` go to :class:`Engine`
    (``exporters=[...]``, ``plane=...``).
    """
    return Engine(policy, make_plugin_manager(*plugins, builtins=builtins), **options)


def make_policy(
    *plugins: object,
    cost_centers: Sequence[str] = ("CC-1", "CC-2", "CC-3"),
    rules: Sequence[Mapping[str, Any]] = (),
    builtins: bool = False,
    directory: Path | None = None,
    **spec: Any,
) -> Policy:
    """A policy with these cost centers, rules and other ``spec`` keys, loaded like a file.

    It goes through every validation layer with the components of ``plugins`` (and the
    built-ins if ``builtins``), so a mistake in a test policy is a located
    :class:`~chargeback_engine.errors.PolicyError`, not a confusing result later. The file
    is ``test-policy.yaml`` in ``directory`` (give ``tmp_path`` when driver files sit
    beside it), else in a temporary directory removed once loaded.
    """
    document = {
        "apiVersion": "chargeback/v1",
        "kind": "AllocationPolicy",
        "metadata": {"name": "test-policy", "version": "1", "effective": {"from": "2000-01-01"}},
        "spec": {
            "currency": "USD",
            "cost_centers": [{"id": cc, "name": cc} for cc in cost_centers],
            "rules": list(rules),
            **spec,
        },
    }
    registry = make_registry(*plugins, builtins=builtins)
    if directory is not None:
        return _load_policy(document, Path(directory), registry)
    with tempfile.TemporaryDirectory(prefix="chargeback-test-policy-") as temporary:
        return _load_policy(document, Path(temporary), registry)


def _load_policy(document: Mapping[str, Any], directory: Path, registry: Registry) -> Policy:
    path = directory / "test-policy.yaml"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")  # JSON is YAML
    [policy] = load_policies([path], registry).policies
    return policy


def line_items(
    *rows: Mapping[str, Any],
    period: str | Period = "2026-10",
    currency: str = "USD",
    source_id: str = "test-source",
    **common: Any,
) -> pa.Table:
    """A cost table in :data:`~chargeback_engine.focus.COST_TABLE_SCHEMA`, one row per mapping.

    Keys are FOCUS column names; ``common`` columns apply to every row that does not set
    them. ``BilledCost`` and ``EffectiveCost`` copy each other when only one is given. Money
    is ``Decimal``, ``int`` or ``str``: a float is refused, since 0.1 is not exact. The rest
    is :func:`chargeback_engine.engine.items.build_line_items`: defaults for the period,
    ``Tags`` from a dict, ``x_SourceRow`` from 1, and an error for more than 10 decimals.
    """
    month = period if isinstance(period, Period) else Period.parse(period)
    items = []
    for position, row in enumerate(rows, start=1):
        item = {**common, **row}
        floats = sorted(k for k, v in item.items() if isinstance(v, float) and k in _DECIMAL_COLUMNS)
        if floats:
            raise TypeError(
                f"line item {position}: {', '.join(floats)} is a float; use Decimal or str, floats are not exact"
            )
        if "BilledCost" not in item and "EffectiveCost" not in item:
            raise ValueError(f"line item {position}: give BilledCost or EffectiveCost")
        item.setdefault("BilledCost", item.get("EffectiveCost"))
        item.setdefault("EffectiveCost", item["BilledCost"])
        items.append(item)
    return build_line_items(items, month, source_id=source_id, currency=currency)


_DECIMAL_COLUMNS = {f.name for f in COST_TABLE_SCHEMA if pa.types.is_decimal(f.type)}

#: Line items the allocator and exporter contracts run through the engine: ten-digit
#: amounts, a credit and a zero, so that any rounding or lost line shows.
CONTRACT_LINE_ITEMS = (
    {"BilledCost": "100.0000000001", "ServiceName": "Amazon EC2", "Tags": {"team": "web"}},
    {"BilledCost": "0.0000000007", "ServiceName": "Amazon S3", "Tags": {"team": "data"}},
    {"BilledCost": "-3.3333333333", "ServiceName": "Amazon EC2", "ChargeCategory": "Credit"},
    {"BilledCost": "0", "ServiceName": "AWS Support"},
)


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


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
    data is malformed. Set ``period`` to the month it covers (every ``collect`` call gets
    it) and, to pin the amounts, ``expected_totals`` to the exact sum per money column.
    """

    kind = "collectors"
    schema_attribute = "config_schema"
    period: ClassVar[Period] = Period(2026, 10)
    expected_totals: ClassVar[Mapping[str, Decimal]] = {}

    @pytest.fixture
    def config(self) -> Mapping[str, Any]:
        pytest.fail("override the `config` fixture with a sources: entry that works in this test")

    @pytest.fixture
    def bad_config(self) -> Mapping[str, Any]:
        pytest.skip("override the `bad_config` fixture with a sources: entry whose data is malformed")

    @pytest.fixture
    def collected(self, component: Any, config: Mapping[str, Any]) -> list[CollectedSource]:
        return list(component.collect(config, self.period))

    def test_config_matches_the_schema(self, config: Mapping[str, Any]) -> None:
        errors = [e.message for e in assembled_validator(self.plugin, "source", self.name).iter_errors(config)]
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
            assert plain_schema(source.table.schema).equals(COST_TABLE_SCHEMA), _schema_diff(source.table.schema)

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

    def test_collecting_twice_gives_the_same_data(
        self, component: Any, config: Mapping[str, Any], collected: list[CollectedSource]
    ) -> None:
        again = list(component.collect(config, self.period))
        assert [(s.source_id, s.version) for s in again] == [(s.source_id, s.version) for s in collected]
        assert all(a.table.equals(b.table) for a, b in zip(again, collected, strict=True))

    def test_bad_input_is_an_input_error(self, component: Any, bad_config: Mapping[str, Any]) -> None:
        with pytest.raises(InputError):
            list(component.collect(bad_config, self.period))


class AllocatorContract(_ComponentContract):
    """Subclass as ``class TestMyAllocator(AllocatorContract)``; set ``plugin`` and ``name``.

    ``valid_blocks`` and ``invalid_blocks`` are ``allocate:`` blocks (``method`` included)
    that the allocator must accept and reject. They are checked against a policy with
    ``cost_centers`` and the extra ``policy_spec`` keys (drivers, say), and each valid block
    allocates ``sample_items`` through the real engine (built-ins loaded, for nested blocks).
    """

    kind = "allocators"
    schema_attribute = "params_schema"
    valid_blocks: ClassVar[Sequence[Mapping[str, Any]]] = ()
    invalid_blocks: ClassVar[Sequence[Mapping[str, Any]]] = ()
    cost_centers: ClassVar[Sequence[str]] = ("CC-1", "CC-2", "CC-3")
    policy_spec: ClassVar[Mapping[str, Any]] = {}
    sample_items: ClassVar[Sequence[Mapping[str, Any]]] = CONTRACT_LINE_ITEMS
    period: ClassVar[Period] = Period(2026, 10)

    def contract_policy(self, *blocks: Mapping[str, Any]) -> Policy:
        """The contract's policy, with one catch-all rule per block."""
        rules = [{"id": f"contract-rule-{i}", "priority": i, "allocate": dict(b)} for i, b in enumerate(blocks, 1)]
        return make_policy(self.plugin, builtins=True, cost_centers=self.cost_centers, rules=rules, **self.policy_spec)

    @pytest.fixture
    def policy(self) -> Policy:
        return self.contract_policy()

    def test_has_examples(self) -> None:
        assert self.valid_blocks, "set valid_blocks to at least one allocate: block"
        assert self.invalid_blocks, "set invalid_blocks to at least one allocate: block"

    @pytest.fixture
    def validator(self) -> Draft202012Validator:
        return assembled_validator(self.plugin, "allocate", self.name)

    def test_valid_blocks_pass_schema_and_check(
        self, component: Any, policy: Policy, validator: Draft202012Validator
    ) -> None:
        for block in self.valid_blocks:
            assert block.get("method") == self.name, f"{block} does not name method {self.name!r}"
            assert [e.message for e in validator.iter_errors(block)] == [], block
            errors = [f for f in _findings(component, block, policy) if f.severity == "error"]
            assert errors == [], block

    def test_invalid_blocks_are_rejected(self, component: Any, policy: Policy, validator: Draft202012Validator) -> None:
        for block in self.invalid_blocks:
            if validator.is_valid(block):
                errors = [f for f in _findings(component, block, policy) if f.severity == "error"]
                assert errors, f"neither the schema nor check() rejects {block}"

    def test_findings_are_well_formed(self, component: Any, policy: Policy, validator: Draft202012Validator) -> None:
        for block in [*self.valid_blocks, *(b for b in self.invalid_blocks if validator.is_valid(b))]:
            for finding in _findings(component, block, policy):
                assert isinstance(finding, Finding)
                assert all(isinstance(step, str | int) for step in finding.path), finding
                assert finding.message and finding.severity in ("error", "warning"), finding

    def test_targets_are_cost_centers_of_the_policy(self, component: Any, policy: Policy) -> None:
        known = {cc.id for cc in policy.cost_centers} | {policy.unallocated}
        for block in self.valid_blocks:
            targets = component.targets(AllocationSpec.from_document(block).params, policy)
            assert isinstance(targets, frozenset), f"targets() returned {type(targets).__name__}, not frozenset"
            assert targets <= known, f"targets {sorted(targets - known)} are not cost centers of the policy"

    def test_fields_are_columns_or_tags(self, component: Any) -> None:
        for block in self.valid_blocks:
            fields = component.fields(AllocationSpec.from_document(block).params)
            assert isinstance(fields, frozenset), f"fields() returned {type(fields).__name__}, not frozenset"
            unknown = {f for f in fields if f not in COST_TABLE_SCHEMA.names and not f.startswith("tags.")}
            assert not unknown, f"fields {sorted(unknown)} are neither FOCUS columns nor tags.<key>"

    def test_allocates_every_cent_through_the_engine(self) -> None:
        items = line_items(*self.sample_items, period=self.period)
        for block in self.valid_blocks:
            policy = self.contract_policy(block)
            try:  # the engine refuses shares for undeclared cost centers, and unusable weights
                result = make_engine(policy, self.plugin, builtins=True).run([items], self.period)
            except ChargebackError as exc:
                raise AssertionError(f"{block}: the engine refused the allocation: {exc}") from None
            cost = _sum(items[policy.cost_column])
            assert _sum(result.ledger["amount"]) == cost, f"{block}: the ledger does not add up to {cost}"
            again = make_engine(policy, self.plugin, builtins=True).run([items], self.period)
            same = again.run_id == result.run_id and again.ledger.equals(result.ledger)
            assert same, f"{block}: a second run gave another run id or ledger"


class ExporterContract(_ComponentContract):
    """Subclass as ``class TestMyExporter(ExporterContract)``; set ``plugin`` and ``name``.

    The exporter writes a run of the built-in ``even`` method over the contract's line items;
    override the ``result`` fixture to export a run of your own.
    """

    kind = "exporters"
    schema_attribute = "options_schema"

    @pytest.fixture
    def result(self) -> RunResult:
        rule = {"id": "contract-even", "priority": 1, "allocate": {"method": "even", "among": ["CC-1", "CC-2", "CC-3"]}}
        policy = make_policy(builtins=True, rules=[rule])
        return make_engine(policy, builtins=True).run([line_items(*CONTRACT_LINE_ITEMS)], "2026-10")

    def test_writes_only_the_files_it_returns(self, component: Any, result: RunResult, tmp_path: Path) -> None:
        returned = [Path(p) for p in component.export(result, tmp_path)]
        assert returned, "export() returned no files"
        outside = [p for p in returned if p.parent != tmp_path or not p.is_file()]
        assert not outside, f"not files directly in the directory: {outside}"
        present = sorted(p.name for p in tmp_path.rglob("*"))
        assert present == sorted(p.name for p in returned), "export() left files it did not return (temp files?)"

    def test_output_is_deterministic(self, component: Any, result: RunResult, tmp_path: Path) -> None:
        first, second = tmp_path / "first", tmp_path / "second"
        first.mkdir()
        second.mkdir()
        one = {Path(p).name: Path(p).read_bytes() for p in component.export(result, first)}
        two = {Path(p).name: Path(p).read_bytes() for p in component.export(result, second)}
        assert one.keys() == two.keys(), "file names differ between two exports of one run"
        assert [n for n in one if one[n] != two[n]] == [], "these files differ between two exports of one run"

    def test_the_engine_writes_it_atomically_with_a_manifest(self, result: RunResult, tmp_path: Path) -> None:
        engine = make_engine(result.policy, self.plugin, builtins=True, exporters=[self.name])
        written = engine.run([result.records], result.period, out=tmp_path / "out")
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
        listed = sorted(entry["file"] for entry in manifest["outputs"])
        assert listed == sorted(p.name for p in written.outputs if p.name != "manifest.json")
        shown = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))  # not .current
        assert shown == sorted([*listed, "manifest.json"])


class EnricherContract(_ComponentContract):
    """Subclass as ``class TestMyEnricher(EnricherContract)``; set ``plugin`` and ``name``.

    Override the ``options`` fixture to return one ``spec.enrich.sources`` entry that works
    in the test (a file in ``tmp_path``, a moto account, a recorded transport) and
    ``bad_options`` to one whose inventory is malformed or refused.
    """

    kind = "enrichers"
    schema_attribute = "options_schema"

    @pytest.fixture
    def options(self) -> Mapping[str, Any]:
        pytest.fail("override the `options` fixture with a spec.enrich.sources entry that works in this test")

    @pytest.fixture
    def bad_options(self) -> Mapping[str, Any]:
        pytest.skip("override the `bad_options` fixture with an entry whose inventory is malformed")

    @pytest.fixture
    def records(self, component: Any, options: Mapping[str, Any]) -> list[TagRecord]:
        return list(component.inventory(options))

    def test_options_match_the_schema(self, options: Mapping[str, Any]) -> None:
        errors = [e.message for e in assembled_validator(self.plugin, "enricher", self.name).iter_errors(options)]
        assert not errors, errors

    def test_yields_tag_records(self, records: list[TagRecord]) -> None:
        assert records, "inventory() yielded nothing"
        for record in records:
            assert isinstance(record, TagRecord), record
            assert record.scope in SCOPES, record
            assert isinstance(record.key, str) and record.key, record
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in record.tags.items()), record

    def test_reading_twice_gives_the_same_snapshot(
        self, component: Any, options: Mapping[str, Any], records: list[TagRecord]
    ) -> None:
        assert snapshot_table(component.inventory(options)).equals(snapshot_table(records))

    def test_bad_input_is_an_input_error(self, component: Any, bad_options: Mapping[str, Any]) -> None:
        with pytest.raises(InputError):
            list(component.inventory(bad_options))

    def test_the_engine_fills_an_untagged_line_from_it(
        self, component: Any, options: Mapping[str, Any], records: list[TagRecord], tmp_path: Path
    ) -> None:
        plugin = _ContributesEnricher(component)  # this fixture's component, with its test doubles
        record = next(r for r in records if r.tags)
        line: dict[str, Any] = {"BilledCost": "1.2345678901", "Tags": {}}
        if record.scope == "account":
            line["SubAccountId"] = record.key
        else:
            line["ResourceId"] = record.key if record.scope == "resource" else f"{record.key}/providers/x/y/z"
        policy = make_policy(plugin, directory=tmp_path, enrich={"cache": "cache", "sources": [dict(options)]})
        result = make_engine(policy, plugin).run([line_items(line)], "2026-10")
        [tags] = result.records["Tags"].to_pylist()
        normalized = {policy.tags.normalize_key(k): policy.tags.normalize_value(v) for k, v in record.tags.items()}
        assert {k: v for k, v in json.loads(tags).items() if k in normalized} == normalized


class _ContributesEnricher:
    """A plugin registering one given enricher object (a contract's ``component`` fixture)."""

    def __init__(self, enricher: Any):
        self.enricher = enricher

    @hookimpl
    def chargeback_register_enrichers(self, register: Any) -> None:
        register(self.enricher)


def assembled_validator(plugin: object, block: str, name: str) -> Draft202012Validator:
    """A validator for one component's block (``allocate``, ``source``, ``export`` or
    ``enricher``) as the kernel assembles it into the policy schema: the discriminator
    pinned, and for a ``source`` the host's ``id`` added."""
    defs = assemble_schema(make_registry(plugin, builtins=True))["$defs"]
    return Draft202012Validator({"$defs": defs, "$ref": f"#/$defs/{block}.{name}"})


def _findings(component: Any, block: Mapping[str, Any], policy: Policy) -> list[Finding]:
    return list(component.check(AllocationSpec.from_document(block).params, policy))


def _sum(column: pa.ChunkedArray) -> Decimal:
    total = pc.sum(column).as_py()
    return Decimal(0) if total is None else total


def _schema_diff(schema: pa.Schema) -> str:
    expected = {f.name: f.type for f in COST_TABLE_SCHEMA}
    actual = {f.name: f.type for f in plain_schema(schema)}
    problems = [f"missing {n}" for n in expected if n not in actual]
    problems += [f"unexpected {n}" for n in actual if n not in expected]
    problems += [f"{n} is {actual[n]}, not {t}" for n, t in expected.items() if n in actual and actual[n] != t]
    return "; ".join(problems) or "column order differs from COST_TABLE_SCHEMA (use focus.conform)"
