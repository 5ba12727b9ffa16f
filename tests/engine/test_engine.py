"""End-to-end runs through the real kernel, DuckDB data plane and exporters."""

from __future__ import annotations

import json
import shutil
from decimal import Context, Decimal
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from chargeback_engine import ConservationError, Engine, InputError, hookimpl
from chargeback_engine.engine import duck, store
from chargeback_engine.engine.duck import LEDGER_ROWS, DuckDBPlane
from chargeback_engine.plugins import get_plugin_manager
from chargeback_engine.sql_common import connect
from tests.engine.helpers import line_items, make_policy

CENTERS = [
    {"id": "CC-1"},
    {"id": "CC-2"},
    {"id": "CC-3"},
    {"id": "SHARED", "shared": True},
    {"id": "PLATFORM", "shared": True},
]


def policy(rules: list[dict], stages: list[dict] | None = None, **spec) -> object:  # type: ignore[no-untyped-def]
    return make_policy({"cost_centers": CENTERS, "rules": rules, "stages": stages or [], **spec})


def by_center(result, stage: int | None = None) -> dict[str, Decimal]:  # type: ignore[no-untyped-def]
    totals: dict[str, Decimal] = {}
    for row in result.ledger.to_pylist():
        if stage is None or row["stage"] == stage:
            totals[row["cost_center"]] = totals.get(row["cost_center"], Decimal(0)) + row["amount"]
    return totals


def test_one_cent_split_one_to_one_conserves_the_cent(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "half",
                "priority": 1,
                "when": {},
                "allocate": {"method": "fixed", "splits": {"CC-1": 0.5, "CC-2": 0.5}},
            }
        ]
    )
    result = Engine(p, plugins).run([line_items([{"EffectiveCost": "0.01"}])], "2026-10")
    assert sorted(result.ledger["amount"].to_pylist()) == [Decimal("0.005"), Decimal("0.005")]
    three = policy([{"id": "thirds", "priority": 1, "when": {}, "allocate": {"method": "even"}}])
    amounts = (
        Engine(three, plugins).run([line_items([{"EffectiveCost": "0.01"}])], "2026-10").ledger["amount"].to_pylist()
    )
    # The tie goes where line 0's rotation starts: CC-1.
    assert amounts == [
        Decimal("0.003333333333333334"),
        Decimal("0.003333333333333333"),
        Decimal("0.003333333333333333"),
    ]
    assert sum(amounts) == Decimal("0.01")


def test_a_source_without_billing_accounts_still_balances(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "even"}}])
    items = line_items([{"EffectiveCost": "1.00"}, {"EffectiveCost": "2.00"}])
    column = items.schema.get_field_index("BillingAccountId")
    items = items.set_column(column, items.schema.field(column), pa.nulls(2, pa.string()))
    result = Engine(p, plugins).run([items], "2026-10")
    assert sum(result.ledger["amount"].to_pylist()) == Decimal("3.00")


def test_totals_wider_than_28_digits_are_exact(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "even"}}])
    lines = [{"EffectiveCost": "900000000000000000.0000000001"}] * 3
    result = Engine(p, plugins).run([line_items(lines)], "2026-10")
    assert result.totals()["USD"]["input"] == Decimal("2700000000000000000.0000000003")


@pytest.mark.parametrize(
    "amount", ["99999999999999999999.999999999999999999", "-99999999999999999999.999999999999999999"]
)
def test_the_largest_amounts_the_cost_table_holds_split_exactly(plugins, amount: str) -> None:  # type: ignore[no-untyped-def]
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "even"}}])
    result = Engine(p, plugins).run([line_items([{"EffectiveCost": amount}])], "2026-10")
    third = Decimal(amount.replace("9", "3"))
    assert result.ledger["amount"].to_pylist() == [third] * 3  # 38 nines (DECIMAL(38, 18)) divide by three exactly


def test_no_rule_matched_goes_to_the_unallocated_bucket_with_a_reason(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "s3",
                "priority": 1,
                "when": {"ServiceName": "S3"},
                "allocate": {"method": "direct", "cost_center": "CC-1"},
            }
        ]
    )
    result = Engine(p, plugins).run([line_items([{"EffectiveCost": "7", "ServiceName": "EC2"}])], "2026-10")
    row = result.ledger.to_pylist()[0]
    assert (row["cost_center"], row["category"], row["rule_id"]) == ("UNALLOCATED", "unallocated", None)
    decision = result.decisions.to_pylist()[0]
    assert decision["reason"] == "no rule matched" and decision["decision_id"] == row["decision_id"]
    assert ("UNALLOCATED", "USD", Decimal("7")) in result.summary()


def test_decisions_record_rule_location_policy_identity_and_shares(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "web",
                "priority": 5,
                "when": {"tags.team": "web"},
                "allocate": {"method": "tag", "keys": ["team"], "map": {"web": "CC-2"}},
            }
        ]
    )
    items = line_items(
        [{"EffectiveCost": "1", "Tags": {"Team": "web"}}, {"EffectiveCost": "2", "Tags": {"team": " web "}}]
    )
    result = Engine(p, plugins).run([items], "2026-10")
    decisions = result.decisions.to_pylist()
    assert {d["rule_location"] for d in decisions} == {"test.yaml:3:1"}
    assert {(d["policy_version"], d["policy_hash"]) for d in decisions} == {(p.version, p.content_hash)}
    assert {d["shares"] for d in decisions} == {'{"CC-2":"1"}'}
    assert all(d["decision_id"].startswith("d-") for d in decisions)
    ledger = result.ledger.to_pylist()
    assert [(r["source_id"], r["source_row"]) for r in ledger] == [("test.csv", 1), ("test.csv", 2)]
    assert len({r["record_id"] for r in ledger}) == 2
    assert {r["decision_id"] for r in ledger} <= {d["decision_id"] for d in decisions}


def test_shared_pools_feed_later_pools_with_negative_and_positive_rows(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "a",
                "priority": 3,
                "when": {"ServiceName": "A"},
                "allocate": {"method": "direct", "cost_center": "CC-1"},
            },
            {
                "id": "b",
                "priority": 2,
                "when": {"ServiceName": "B"},
                "allocate": {"method": "direct", "cost_center": "CC-2"},
            },
            {
                "id": "shared",
                "priority": 1,
                "when": {"ServiceName": "S"},
                "allocate": {"method": "direct", "cost_center": "SHARED"},
            },
        ],
        [
            {"pool": "SHARED", "allocate": {"method": "fixed", "splits": {"PLATFORM": 0.5, "CC-3": 0.5}}},
            {"pool": "PLATFORM", "allocate": {"method": "proportional", "basis": "direct-cost"}},
        ],
    )
    items = line_items(
        [
            {"ServiceName": "A", "EffectiveCost": "30"},
            {"ServiceName": "B", "EffectiveCost": "10"},
            {"ServiceName": "S", "EffectiveCost": "100"},
        ]
    )
    result = Engine(p, plugins).run([items], "2026-10")
    stage1 = [r for r in result.ledger.to_pylist() if r["stage"] == 1]
    assert {(r["cost_center"], r["amount"], r["from_cost_center"]) for r in stage1} == {
        ("SHARED", Decimal("-100"), "SHARED"),
        ("PLATFORM", Decimal("50"), "SHARED"),
        ("CC-3", Decimal("50"), "SHARED"),
    }
    assert by_center(result, stage=2) == {"PLATFORM": Decimal("-50"), "CC-1": Decimal("37.5"), "CC-2": Decimal("12.5")}
    assert by_center(result) == {
        "CC-1": Decimal("67.5"),
        "CC-2": Decimal("22.5"),
        "CC-3": Decimal("50"),
        "SHARED": Decimal("0"),
        "PLATFORM": Decimal("0"),
    }


def test_proportional_direct_cost_respects_its_filter(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "support",
                "priority": 9,
                "when": {"ServiceName": "Support"},
                "allocate": {
                    "method": "proportional",
                    "basis": "direct-cost",
                    "filter": {"ServiceCategory": "Compute"},
                },
            },
            {
                "id": "tagged",
                "priority": 1,
                "when": {"tags.cc": {"exists": True}},
                "allocate": {"method": "tag", "keys": ["cc"]},
            },
        ]
    )
    items = line_items(
        [
            {"ServiceName": "EC2", "ServiceCategory": "Compute", "EffectiveCost": "10", "Tags": {"cc": "CC-1"}},
            {"ServiceName": "EC2", "ServiceCategory": "Compute", "EffectiveCost": "30", "Tags": {"cc": "CC-2"}},
            {"ServiceName": "S3", "ServiceCategory": "Storage", "EffectiveCost": "1000", "Tags": {"cc": "CC-3"}},
            {"ServiceName": "Support", "EffectiveCost": "8"},
        ]
    )
    result = Engine(p, plugins).run([items], "2026-10")
    assert by_center(result) == {"CC-1": Decimal("12"), "CC-2": Decimal("36"), "CC-3": Decimal("1000")}


def test_amortization_spreads_over_months_and_outputs_the_schedule(plugins, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "ri",
                "priority": 1,
                "when": {"ChargeFrequency": "One-Time"},
                "allocate": {
                    "method": "amortized",
                    "months": 3,
                    "then": {"method": "fixed", "splits": {"CC-1": 0.5, "CC-2": 0.5}},
                },
            }
        ]
    )
    items = line_items([{"ChargeFrequency": "One-Time", "EffectiveCost": "100"}])
    result = Engine(p, plugins).run([items], "2026-10", out=tmp_path)
    assert sorted((r["period"], r["cost_center"], r["amount"]) for r in result.ledger.to_pylist()) == [
        ("2026-10", "CC-1", Decimal("16.666666666666666667")),
        ("2026-10", "CC-2", Decimal("16.666666666666666667")),
        ("2026-11", "CC-1", Decimal("16.666666666666666667")),
        ("2026-11", "CC-2", Decimal("16.666666666666666666")),
        ("2026-12", "CC-1", Decimal("16.666666666666666667")),
        ("2026-12", "CC-2", Decimal("16.666666666666666666")),
    ]
    schedule = pq.read_table(tmp_path / "schedule.parquet")
    assert sorted(set(schedule["period"].to_pylist())) == ["2026-11", "2026-12"]
    assert pq.read_table(tmp_path / "allocations.parquet")["period"].unique().to_pylist() == ["2026-10"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["totals"]["USD"] == {
        "input": "100.000000000000000000",
        "allocated": "33.333333333333333334",
        "deferred": "66.666666666666666666",
        "carried": "0.000000000000000000",
    }


def test_commitment_term_amortizes_over_the_charge_period(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "ri",
                "priority": 1,
                "when": {},
                "allocate": {
                    "method": "amortized",
                    "months": "commitment-term",
                    "then": {"method": "direct", "cost_center": "CC-1"},
                },
            }
        ]
    )
    items = line_items([{"EffectiveCost": "12", "ChargePeriodEnd": "2027-10-01T00:00:00+00:00"}])
    result = Engine(p, plugins).run([items], "2026-10")
    assert result.ledger.num_rows == 12 and set(result.ledger["amount"].to_pylist()) == {Decimal(1)}


def test_more_than_one_currency_needs_exchange_rates(plugins) -> None:  # type: ignore[no-untyped-def]
    rule = [{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "direct", "cost_center": "CC-1"}}]
    items = pa.concat_tables(
        [
            line_items([{"EffectiveCost": "1"}]),
            line_items([{"EffectiveCost": "1", "BillingCurrency": "EUR"}], source="eur.csv"),
        ]
    )
    with pytest.raises(InputError, match=r"2 currencies \(EUR, USD\)"):
        Engine(policy(rule), plugins).run([items], "2026-10")
    rates = [{"currency": "EUR", "rate": 1.1, "date": "2026-10-01"}]
    result = Engine(policy(rule, exchange_rates=rates), plugins).run([items], "2026-10")
    assert {(c, cur) for c, cur, _ in result.summary()} >= {("CC-1", "EUR"), ("CC-1", "USD")}


def test_direct_cost_weights_are_compared_in_the_policy_currency(plugins) -> None:  # type: ignore[no-untyped-def]
    rules = [
        {
            "id": "a",
            "priority": 3,
            "when": {"ServiceName": "A"},
            "allocate": {"method": "direct", "cost_center": "CC-1"},
        },
        {
            "id": "b",
            "priority": 2,
            "when": {"ServiceName": "B"},
            "allocate": {"method": "direct", "cost_center": "CC-2"},
        },
        {"id": "fee", "priority": 1, "when": {}, "allocate": {"method": "proportional", "basis": "direct-cost"}},
    ]
    items = pa.concat_tables(
        [
            line_items([{"EffectiveCost": "10", "BillingCurrency": "EUR", "ServiceName": "A"}], source="eur.csv"),
            line_items(
                [{"EffectiveCost": "10", "ServiceName": "B"}, {"EffectiveCost": "30", "ServiceName": "Support"}]
            ),
        ]
    )
    rates = [
        {"currency": "EUR", "rate": 3, "date": "2026-01-01"},
        {"currency": "EUR", "rate": 2, "date": "2026-09-30"},
        {"currency": "EUR", "rate": 9, "date": "2026-10-02"},
    ]  # in effect on 2026-10-01: 2
    result = Engine(policy(rules, exchange_rates=rates), plugins).run([items], "2026-10")
    fee = result.ledger.filter(pc.equal(result.ledger["rule_id"], "fee"))
    assert dict(zip(fee["cost_center"].to_pylist(), fee["amount"].to_pylist(), strict=True)) == {
        "CC-1": Decimal(20),
        "CC-2": Decimal(10),
    }  # 10 EUR weighs 20 USD against 10 USD


def test_a_currency_without_a_rate_in_effect_is_named(plugins) -> None:  # type: ignore[no-untyped-def]
    rule = [{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "direct", "cost_center": "CC-1"}}]
    items = pa.concat_tables(
        [
            line_items([{"EffectiveCost": "1"}]),
            line_items([{"EffectiveCost": "1", "BillingCurrency": "EUR"}], source="eur.csv"),
        ]
    )
    rates = [{"currency": "EUR", "rate": 1.1, "date": "2026-10-02"}]
    with pytest.raises(InputError, match="no exchange rate for EUR dated on or before 2026-10-01"):
        Engine(policy(rule, exchange_rates=rates), plugins).run([items], "2026-10")


def test_empty_input_is_a_clear_error(plugins) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="empty"):
        Engine(policy([]), plugins).run([line_items([])], "2026-10")


def test_bad_tags_json_is_an_input_error(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "t",
                "priority": 1,
                "when": {"tags.team": "x"},
                "allocate": {"method": "direct", "cost_center": "CC-1"},
            }
        ]
    )
    with pytest.raises(InputError, match="not JSON"):
        Engine(p, plugins).run([line_items([{"EffectiveCost": "1", "Tags": "{team:"}])], "2026-10")


class LeakyPlane(DuckDBPlane):
    """A data plane with a bug: it loses the last ledger row. The engine must notice."""

    def balances(self) -> pa.Table:
        self._con.execute(f"DELETE FROM {LEDGER_ROWS} WHERE rowid = (SELECT max(rowid) FROM {LEDGER_ROWS})")
        return super().balances()


def test_a_conservation_failure_writes_nothing(plugins, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "even"}}])
    with pytest.raises(ConservationError, match="not conserved: USD account acct-1|account-1"):
        Engine(p, plugins, plane=LeakyPlane).run(
            [line_items([{"EffectiveCost": "9"}])], "2026-10", out=tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()


def test_outputs_are_byte_identical_on_rerun_and_the_manifest_describes_them(plugins, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "even"}}])
    items = line_items(
        [{"EffectiveCost": "10", "ServiceName": '=HYPERLINK("x")'}, {"EffectiveCost": "-3", "ServiceName": "@sum"}]
    )
    extra = ["allocations-csv", "focus-allocated"]
    first = Engine(p, plugins).run([items], "2026-10", out=tmp_path / "a", export=extra)
    second = Engine(p, plugins).run([items], "2026-10", out=tmp_path / "b", export=extra)
    assert first.run_id == second.run_id
    names = sorted(f.name for f in (tmp_path / "a").iterdir() if not f.name.startswith("."))
    assert names == [
        "allocations.csv",
        "allocations.parquet",
        "decisions.parquet",
        "focus_allocated.parquet",
        "manifest.json",
        "summary.csv",
    ]  # nothing deferred: no schedule
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["policy"] == {"name": "test", "version": "1", "hash": p.content_hash, "unallocated": p.unallocated}
    assert manifest["rows"]["input"] == 2 and manifest["inputs"][0]["sha256"].startswith("sha256:")
    assert {o["file"] for o in manifest["outputs"]} == set(names) - {"manifest.json"}


def test_ids_do_not_depend_on_where_the_policy_was_loaded_from(tmp_path: Path) -> None:
    """Two checkouts of one policy repository give the same run, decision ids and bytes;
    only the decisions' recorded rule locations name their own directory."""
    sample = Path(__file__).parents[2] / "policies"
    outs = []
    for checkout in ("a", "b"):
        shutil.copytree(sample, tmp_path / checkout)
        Engine(tmp_path / checkout / "acme.yaml").run(
            [sample / "data" / "acme-focus-2026-10.csv"],
            "2026-10",
            out=tmp_path / f"out-{checkout}",
            export=["allocations-csv", "focus-allocated"],
        )
        outs.append(tmp_path / f"out-{checkout}")
    decisions = [pq.read_table(out / "decisions.parquet") for out in outs]
    assert decisions[0]["decision_id"].equals(decisions[1]["decision_id"])
    locations = [str(d["rule_location"][0]) for d in decisions]
    assert locations[0].replace(str(tmp_path / "a"), str(tmp_path / "b")) == locations[1] != locations[0]
    for name in ("allocations.parquet", "allocations.csv", "focus_allocated.parquet", "summary.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_working_in_slices_changes_no_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Allocation queries, the store's sort and the streamed batches each work on a slice of
    the month; slices of a few lines (many per run) must give the outputs of one slice, and
    so must a working ledger compressed from its first row on."""
    sample = Path(__file__).parents[2] / "policies"
    run = partial(
        Engine(sample / "acme.yaml").run,
        [sample / "data" / "acme-focus-2026-10.csv"],
        "2026-10",
        export=["allocations-csv", "focus-allocated"],
    )
    run(out=tmp_path / "whole")
    monkeypatch.setattr(duck, "ALLOCATE_LINES", 7)
    monkeypatch.setattr(store, "SORT_LINES", 5)
    monkeypatch.setattr(store, "BATCH_ROWS", 11)
    monkeypatch.setattr(duck, "COMPRESS_ABOVE_ROWS", 0)
    run(out=tmp_path / "sliced")
    for name in sorted(p.name for p in (tmp_path / "whole").iterdir() if not p.name.startswith(".")):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "sliced" / name).read_bytes(), name


def test_csv_cells_that_look_like_formulas_are_defused_but_amounts_are_not(plugins, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "direct", "cost_center": "CC-1"}}])
    items = line_items(
        [{"EffectiveCost": "-3", "ServiceName": "=cmd|' /C calc'!A0", "ResourceId": "+1", "RegionId": "\tx"}]
    )
    Engine(p, plugins).run([items], "2026-10", out=tmp_path, export=["allocations-csv"])
    text = (tmp_path / "allocations.csv").read_text()
    assert "'=cmd|" in text and ",'+1," in text and "'\tx" in text
    assert ",-3.000000000000000000," in text
    assert (
        (tmp_path / "summary.csv").read_text()
        == "cost_center,currency,amount\nCC-1,USD,-3.000000000000000000\nUNALLOCATED,USD,0.000000000000000000\n"
    )


def test_focus_allocated_adds_the_allocation_columns(plugins, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "all",
                "priority": 1,
                "when": {},
                "allocate": {"method": "fixed", "splits": {"CC-1": 0.75, "CC-2": 0.25}},
            }
        ]
    )
    Engine(p, plugins).run(
        [line_items([{"EffectiveCost": "4", "ServiceName": "EC2"}])],
        "2026-10",
        out=tmp_path,
        export=["focus-allocated"],
    )
    table = pq.read_table(tmp_path / "focus_allocated.parquet")
    for column in (
        "AllocatedMethodId",
        "AllocatedMethodDetails",
        "x_CostCenterId",
        "x_AllocationRuleId",
        "x_PolicyVersion",
        "x_DecisionId",
        "ServiceName",
        "Tags",
    ):
        assert column in table.column_names
    assert table["EffectiveCost"].to_pylist() == [Decimal(3), Decimal(1)]
    assert table["x_CostCenterId"].to_pylist() == ["CC-1", "CC-2"]
    assert json.loads(table["AllocatedMethodDetails"][0].as_py())["stage"] == 0


def test_paths_go_to_the_focus_files_collector_and_policy_sources_to_theirs(tmp_path: Path) -> None:
    csv = tmp_path / "bill.csv"
    csv.write_text(
        "BilledCost,EffectiveCost,BillingCurrency,BillingAccountId,ChargePeriodStart,ChargePeriodEnd,ServiceName\n"
        "1.25,1.25,USD,a,2026-10-01T00:00:00Z,2026-11-01T00:00:00Z,EC2\n"
        "0.75,0.75,USD,a,2026-10-01T00:00:00Z,2026-11-01T00:00:00Z,S3\n"
    )
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "direct", "cost_center": "CC-1"}}])
    result = Engine(p).run([csv], "2026-10", out=tmp_path / "out")
    assert result.summary()[0] == ("CC-1", "USD", Decimal("2.00"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"] == [
        {
            "source_id": str(csv),
            "path": str(csv),
            "rows": 2,
            "sha256": "sha256:" + __import__("hashlib").sha256(csv.read_bytes()).hexdigest(),
        }
    ]


def test_a_month_split_across_csv_and_parquet_files_allocates_as_one(tmp_path: Path) -> None:
    """Sources holding text differently (CSV, Parquet) are combined into one table, column
    by column, and allocate exactly as the month in one file."""
    sample = Path(__file__).parents[2] / "policies"
    month = sample / "data" / "acme-focus-2026-10.csv"
    whole = Engine(sample / "acme.yaml").run([month], "2026-10")
    table = pacsv.read_csv(
        month,
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in pacsv.read_csv(month).column_names}, strings_can_be_null=True
        ),
    )
    pacsv.write_csv(table.slice(0, 250), tmp_path / "a.csv")
    pq.write_table(table.slice(250), tmp_path / "b.parquet")
    split = Engine(sample / "acme.yaml").run([tmp_path / "a.csv", tmp_path / "b.parquet"], "2026-10")
    assert split.summary() == whole.summary()
    assert split.totals() == whole.totals()
    assert split.count() == whole.count()
    sources = split.store.sql("SELECT x_SourceId, count(*) FROM records GROUP BY 1 ORDER BY 1").fetchall()
    assert sources == [(str(tmp_path / "a.csv"), 250), (str(tmp_path / "b.parquet"), 350)]


def test_the_decisions_observer_hook_sees_every_decision(plugins) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, int]] = []

    class Recorder:
        @hookimpl
        def chargeback_decisions_recorded(self, run_id: str, decisions: pa.Table) -> None:
            seen.append((run_id, decisions.num_rows))

    pm = get_plugin_manager()
    pm.register(Recorder(), name="recorder")
    p = policy([{"id": "s3", "priority": 1, "when": {"ServiceName": "S3"}, "allocate": {"method": "even"}}])
    items = line_items([{"EffectiveCost": "1", "ServiceName": "S3"}, {"EffectiveCost": "1", "ServiceName": "EC2"}])
    result = Engine(p, pm).run([items], "2026-10")
    assert seen == [(result.run_id, 2)]


def test_credits_keep_their_category(plugins) -> None:  # type: ignore[no-untyped-def]
    p = policy([{"id": "all", "priority": 1, "when": {}, "allocate": {"method": "direct", "cost_center": "CC-1"}}])
    result = Engine(p, plugins).run([line_items([{"EffectiveCost": "-5", "ChargeCategory": "Credit"}])], "2026-10")
    assert pc.unique(result.ledger["category"]).to_pylist() == ["credit"]


def test_later_periods_receive_their_share_from_the_schedule(plugins, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = policy(
        [
            {
                "id": "ri",
                "priority": 2,
                "when": {"ChargeFrequency": "One-Time"},
                "allocate": {"method": "amortized", "months": 3, "then": {"method": "direct", "cost_center": "CC-2"}},
            },
            {"id": "rest", "priority": 1, "when": {}, "allocate": {"method": "direct", "cost_center": "CC-1"}},
        ]
    )
    october = Engine(p, plugins).run(
        [line_items([{"ChargeFrequency": "One-Time", "EffectiveCost": "90"}])], "2026-10", out=tmp_path / "oct"
    )
    november = Engine(p, plugins).run(
        [line_items([{"EffectiveCost": "5"}], period="2026-11")],
        "2026-11",
        carry=[tmp_path / "oct" / "schedule.parquet"],
    )
    assert november.summary() == [
        ("CC-1", "USD", Decimal("5")),
        ("CC-2", "USD", Decimal("30")),
        ("UNALLOCATED", "USD", Decimal("0")),
    ]
    carried = [r for r in november.allocations.to_pylist() if r["run_id"] == october.run_id]
    assert [(r["category"], r["source_row"], r["decision_id"]) for r in carried] == [
        ("amortized", 1, october.ledger["decision_id"][0].as_py())
    ]
    assert november.totals()["USD"] == {
        "input": Decimal(5),
        "allocated": Decimal(35),
        "deferred": Decimal(0),
        "carried": Decimal(30),
    }


def test_parquet_bytes_depend_on_the_values_not_on_how_they_are_held(tmp_path: Path) -> None:
    """The DuckDB and Spark stores hand the same rows in other batches and encodings. (At 1M
    lines, pages cut at chunk ends made the two planes' files differ; this smaller case
    guards the contract, not that exact trigger.)"""
    from chargeback_engine.exporters.ledger_files import write_parquet

    rows, cut = 300_000, 100_001  # pages of 1 MiB fill up across the cut
    text = [f"resource-{i % 5000:08d}" for i in range(rows)]
    plain = pa.table({"s": text, "n": list(range(rows))})
    split = pa.table(
        {
            "s": pa.chunked_array([pa.array(text[:cut]).dictionary_encode(), pa.array(text[cut:]).dictionary_encode()]),
            "n": pa.chunked_array([pa.array(range(cut)), pa.array(range(cut, rows))]),
        }
    )
    # A dictionary in another order, holding a value no row uses, as a line item's dictionary does.
    values = sorted(set(text), reverse=True) + ["unused"]
    position = {v: i for i, v in enumerate(values)}
    shuffled = pa.table(
        {
            "s": pa.DictionaryArray.from_arrays(pa.array([position[t] for t in text], pa.int32()), values),
            "n": list(range(rows)),
        }
    )
    written = [write_parquet(t, tmp_path / f"{i}.parquet").read_bytes() for i, t in enumerate((plain, split, shuffled))]
    assert written[0] == written[1] == written[2]


def test_the_plane_reads_money_as_its_exact_integer_units() -> None:
    """The DuckDB plane splits integer units read straight from the money's 128 bits."""
    amounts = [Decimal("-99999999999999999999.999999999999999999"), Decimal("-0.000000000000000001"), None]
    amounts += [Decimal(0), Decimal("12.5"), Decimal("99999999999999999999.999999999999999999")]
    money = pa.chunked_array([pa.array(amounts, pa.decimal128(38, 18))]).slice(1)  # an offset too
    con = connect()
    con.register("halves", pa.table(duck._unit_halves(money)))
    units = [row[0] for row in con.sql(f"SELECT {duck._UNITS} FROM halves").fetchall()]
    assert units == [None if a is None else int(a.scaleb(18, Context(prec=60))) for a in amounts[1:]]
