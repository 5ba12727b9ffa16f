"""``chargeback_engine.testing``: the line-item builder, and the contracts on real components."""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from jsonschema import Draft202012Validator

from chargeback_engine import InputError, PluginError, PolicyError, hookimpl
from chargeback_engine.components import Shares
from chargeback_engine.focus import COST_TABLE_SCHEMA
from chargeback_engine.periods import Period
from chargeback_engine.testing import (
    AllocatorContract,
    CollectorContract,
    ExporterContract,
    line_items,
    make_engine,
    make_policy,
    make_registry,
)

ACME_INIT = Path(__file__).parent / "fixtures" / "chargeback-acme" / "chargeback_acme" / "__init__.py"


def _load_acme() -> Any:
    """The fixture distribution's module, loaded from its file (it is not installed here)."""
    spec = importlib.util.spec_from_file_location("chargeback_acme_under_test", ACME_INIT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


acme = _load_acme()


# --- line_items ------------------------------------------------------------------------


def test_line_items_fill_required_columns_and_keep_money_exact():
    table = line_items(
        {"EffectiveCost": "0.1000000001", "Tags": {"team": "web", "Env": "prod"}},
        {"BilledCost": Decimal("-2.5"), "ServiceName": "Amazon S3"},
        period="2026-02",
        ServiceName="Amazon EC2",
    )
    assert table.schema.equals(COST_TABLE_SCHEMA)
    first, second = table.to_pylist()
    assert (first["BilledCost"], first["EffectiveCost"]) == (Decimal("0.1000000001"),) * 2
    assert (second["BilledCost"], second["EffectiveCost"]) == (Decimal("-2.5"),) * 2
    assert (first["ServiceName"], second["ServiceName"]) == ("Amazon EC2", "Amazon S3")
    assert first["Tags"] == '{"Env": "prod", "team": "web"}' and second["Tags"] is None
    assert str(first["ChargePeriodStart"]) == "2026-02-01 00:00:00+00:00"
    assert str(first["ChargePeriodEnd"]) == "2026-03-01 00:00:00+00:00"
    assert [r["x_SourceRow"] for r in (first, second)] == [1, 2]
    assert {r["x_SourceId"] for r in (first, second)} == {"test-source"}
    assert {r["BillingCurrency"] for r in (first, second)} == {"USD"}


@pytest.mark.parametrize(
    ("row", "error", "message"),
    [
        ({"BilledCost": 0.1}, TypeError, "line item 1: BilledCost is a float"),
        ({"BilledCost": "1.0000000000000000001"}, pa.ArrowInvalid, "would cause data loss"),  # 19 digits
        ({"BilledCost": "1", "BilledCosts": "1"}, InputError, "item 1: unknown FOCUS column\\(s\\) BilledCosts"),
        ({"ServiceName": "x"}, ValueError, "line item 1: give BilledCost or EffectiveCost"),
    ],
)
def test_line_items_refuse_inexact_or_unknown_input(row, error, message):
    with pytest.raises(error, match=message):
        line_items(row)


def test_line_items_with_no_rows_is_an_empty_cost_table():
    assert line_items().equals(COST_TABLE_SCHEMA.empty_table())


def test_make_policy_has_the_given_cost_centers():
    policy = make_policy(cost_centers=["CC-7"])
    assert [cc.id for cc in policy.cost_centers] == ["CC-7"]
    assert policy.cost_center("CC-1") is None


def test_make_policy_validates_like_a_policy_file():
    rule = {"id": "to-acme", "priority": 1, "allocate": {"method": "acme-weighted", "weights": {"CC-9": 1}}}
    with pytest.raises(
        PolicyError,
        match=r"test-policy.yaml:\d+:\d+: \$.spec.rules\[0\].allocate.weights.CC-9: "
        r"unknown cost center 'CC-9'",
    ):
        make_policy(acme, rules=[rule])
    with pytest.raises(PolicyError, match=r"unknown allocation method 'acme-weighted'|acme-weighted"):
        make_policy(rules=[rule])  # without the plugin, the method does not exist


def test_make_registry_ignores_installed_plugins():
    registry = make_registry(acme)
    assert (sorted(registry.allocators), sorted(registry.collectors), sorted(registry.exporters)) == (
        ["acme-weighted"],
        ["acme-csv"],
        ["acme-journal"],
    )
    with_builtins = make_registry(acme, builtins=True)
    assert {"acme-weighted", "even", "fixed"} <= set(with_builtins.allocators)


def test_make_engine_runs_a_policy_with_the_plugins_allocator():
    rule = {"id": "weighted", "priority": 1, "allocate": {"method": "acme-weighted", "weights": {"CC-1": 3, "CC-2": 1}}}
    policy = make_policy(acme, rules=[rule])
    result = make_engine(policy, acme).run([line_items({"EffectiveCost": "1.000000000000000001"})], "2026-10")
    assert {cc: amount for cc, _, amount in result.summary() if amount} == {
        "CC-1": Decimal("0.750000000000000001"),
        "CC-2": Decimal("0.250000000000000000"),
    }


# --- The contracts, on the third-party fixture's real components -----------------------


class TestAcmeWeightedAllocator(AllocatorContract):
    plugin = acme
    name = "acme-weighted"
    valid_blocks = [
        {"method": "acme-weighted", "weights": {"CC-1": 3, "CC-2": 1}},
        {"method": "acme-weighted", "weights": {"CC-3": 1}},
    ]
    invalid_blocks = [
        {"method": "acme-weighted"},
        {"method": "acme-weighted", "weights": {"CC-1": 0}},
        {"method": "acme-weighted", "weights": {"CC-1": 1.5}},
        {"method": "acme-weighted", "weights": {"CC-404": 1}},  # schema-valid; check() rejects it
    ]


OCTOBER = [
    {"BilledCost": "10.0000000003", "EffectiveCost": "9.5", "ServiceName": "Amazon EC2", "Tags": {"team": "web"}},
    {"BilledCost": "-0.0000000001", "EffectiveCost": "0", "ServiceName": "Amazon EC2"},
    {"BilledCost": "2.25", "ServiceName": "Amazon S3", "ChargePeriodStart": "2026-10-31T23:00:00"},
]


class TestAcmeCsvCollector(CollectorContract):
    plugin = acme
    name = "acme-csv"
    period = Period(2026, 10)
    expected_totals = {"BilledCost": Decimal("12.2500000002"), "EffectiveCost": Decimal("11.75")}

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, str]:
        november = line_items({"BilledCost": "1000"}, period="2026-11")
        table = pa.concat_tables([line_items(*OCTOBER), november]).drop_columns(["x_SourceId", "x_SourceRow"])
        pacsv.write_csv(table, tmp_path / "bill.csv")
        return {"collector": "acme-csv", "path": str(tmp_path / "bill.csv")}

    @pytest.fixture
    def bad_config(self, tmp_path: Path) -> dict[str, str]:
        (tmp_path / "bad.csv").write_text(
            "BilledCost,BillingCurrency,ChargePeriodStart\n1.0000000000000000001,USD,2026-10-01T00:00:00Z\n",
            encoding="utf-8",
        )  # 19 digits after the point
        return {"collector": "acme-csv", "path": str(tmp_path / "bad.csv")}


# --- The contracts catch defects (so they are not tests that cannot fail) ---------------


class _Sloppy:
    """An allocator with the defects the contract exists to catch."""

    name = "sloppy"
    params_schema = {"type": "object", "properties": {"to": {"type": "array"}}}

    def check(self, params, policy):  # type: ignore[no-untyped-def]
        return []  # accepts unknown cost centers

    def targets(self, params, policy):  # type: ignore[no-untyped-def]
        return set(params.get("to", []))  # a set, not a frozenset

    def fields(self, params):  # type: ignore[no-untyped-def]
        return frozenset({"Service"})  # not a FOCUS column

    def resolve(self, params, context):  # type: ignore[no-untyped-def]
        return Shares(
            {cc: Decimal(1) for cc in params["to"]} | {"CC-404": Decimal(1)}, "leaks to an unknown cost center"
        )


class _SloppyPlugin:
    __name__ = "sloppy-plugin"

    @hookimpl
    def chargeback_register_allocators(self, register):  # type: ignore[no-untyped-def]
        register(_Sloppy())


class _SloppyContract(AllocatorContract):
    plugin = _SloppyPlugin()
    name = "sloppy"
    valid_blocks = [{"method": "sloppy", "to": ["CC-1"]}]
    invalid_blocks = [{"method": "sloppy", "to": ["CC-404"]}]


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("test_invalid_blocks_are_rejected", "neither the schema nor check"),
        ("test_targets_are_cost_centers_of_the_policy", "returned set, not frozenset"),
        ("test_fields_are_columns_or_tags", r"fields \['Service'\] are neither FOCUS columns nor tags"),
    ],
)
def test_the_allocator_contract_catches_defects(check, message):
    contract = _SloppyContract()
    component = make_registry(_SloppyPlugin()).allocator("sloppy")
    arguments = {
        "component": component,
        "policy": make_policy(),
        "validator": Draft202012Validator(component.params_schema),
    }
    method = getattr(contract, check)
    needed = method.__code__.co_varnames[1 : method.__code__.co_argcount]
    with pytest.raises(AssertionError, match=message):
        method(**{name: arguments[name] for name in needed})


def test_the_collector_contract_catches_rounded_money(tmp_path):
    class Rounding(type(acme.CsvCollector())):  # type: ignore[misc]
        def collect(self, config, period):  # type: ignore[no-untyped-def]
            for source in super().collect(config, period):
                costs = pa.array(
                    [round(c.as_py(), 2) for c in source.table["BilledCost"]],
                    source.table.schema.field("BilledCost").type,
                )
                yield type(source)(source.source_id, source.table.set_column(0, "BilledCost", costs), source.version)

    contract = TestAcmeCsvCollector()
    pacsv.write_csv(line_items(*OCTOBER).drop_columns(["x_SourceId", "x_SourceRow"]), tmp_path / "bill.csv")
    collected = list(Rounding().collect({"collector": "acme-csv", "path": str(tmp_path / "bill.csv")}, contract.period))
    with pytest.raises(AssertionError, match=r"^BilledCost: 12.250000000000000000 != 12.2500000002$"):
        contract.test_amounts_are_exact(collected)


def test_an_unregistered_name_fails_the_contract():
    class Misnamed(TestAcmeWeightedAllocator):
        name = "acme-weigthed"

    with pytest.raises(AssertionError, match=r"registers \['acme-weighted'\], not 'acme-weigthed'"):
        Misnamed().test_registers_under_its_name()


def test_a_contract_for_an_invalid_component_reports_a_plugin_error():
    class Bad(_SloppyContract):
        plugin = _BadNamePlugin()
        name = "Bad"

    with pytest.raises(PluginError, match="must be kebab-case"):
        Bad().test_registers_under_its_name()


class _BadNamePlugin:
    __name__ = "bad-name-plugin"

    @hookimpl
    def chargeback_register_allocators(self, register):  # type: ignore[no-untyped-def]
        register(type("Bad", (_Sloppy,), {"name": "Bad"})())


class TestAcmeJournalExporter(ExporterContract):
    plugin = acme
    name = "acme-journal"


class _Careless:
    """An exporter that leaves a temp file behind and stamps the wall clock into its output."""

    name = "careless"
    options_schema = {"type": "object"}

    def export(self, result, directory):  # type: ignore[no-untyped-def]
        import time

        (directory / "careless.csv.tmp").write_text("half")
        path = directory / "careless.csv"
        path.write_text(f"written at {time.perf_counter_ns()}\n")
        return [path]


class _CarelessPlugin:
    __name__ = "careless-plugin"

    @hookimpl
    def chargeback_register_exporters(self, register):  # type: ignore[no-untyped-def]
        register(_Careless())


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("test_writes_only_the_files_it_returns", "left files it did not return"),
        ("test_output_is_deterministic", "these files differ between two exports of one run"),
    ],
)
def test_the_exporter_contract_catches_defects(check, message, tmp_path):
    class CarelessContract(ExporterContract):
        plugin = _CarelessPlugin()
        name = "careless"

    contract = CarelessContract()
    component = make_registry(_CarelessPlugin()).exporter("careless")
    rule = {"id": "even", "priority": 1, "allocate": {"method": "even", "among": ["CC-1", "CC-2"]}}
    result = make_engine(make_policy(builtins=True, rules=[rule]), builtins=True).run(
        [line_items({"BilledCost": "1"})], "2026-10"
    )
    with pytest.raises(AssertionError, match=message):
        getattr(contract, check)(component, result, tmp_path)


def test_the_allocator_contract_runs_the_real_engine():
    class LeakyAllocator(_Sloppy):
        def fields(self, params):  # type: ignore[no-untyped-def]
            return frozenset()

    class LeakyPlugin:
        __name__ = "leaky-plugin"

        @hookimpl
        def chargeback_register_allocators(self, register):  # type: ignore[no-untyped-def]
            register(LeakyAllocator())

    class Leaky(_SloppyContract):
        plugin = LeakyPlugin()

    with pytest.raises(AssertionError, match=r"refused the allocation: .*undeclared cost center\(s\) 'CC-404'"):
        Leaky().test_allocates_every_cent_through_the_engine()


def test_make_policy_in_a_directory_finds_driver_files_beside_it(tmp_path):
    (tmp_path / "cpu.csv").write_text("period,cost_center,quantity\n2026-10,CC-1,3\n2026-10,CC-2,1\n", encoding="utf-8")
    rule = {"id": "by-cpu", "priority": 1, "allocate": {"method": "proportional", "driver": "cpu-hours"}}
    policy = make_policy(rules=[rule], builtins=True, directory=tmp_path, drivers={"cpu-hours": {"file": "cpu.csv"}})
    result = make_engine(policy, builtins=True).run([line_items({"EffectiveCost": "10"})], "2026-10")
    assert {cc: amount for cc, _, amount in result.summary() if amount} == {
        "CC-1": Decimal("7.5"),
        "CC-2": Decimal("2.5"),
    }
