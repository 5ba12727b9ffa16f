"""The one normaliser: exact money at 18 digits, half-to-even beyond with the exact residue,
'' as null, tags and timestamps, and the same outcome from disk as from a cloud export."""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine.collectors.focus_files import read_focus_file
from chargeback_engine.errors import InputError
from chargeback_engine.focus import plain
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE
from chargeback_engine.normalise import (
    MAX_TAG_DEPTH,
    Rounding,
    canonical_tags,
    exact_money,
    normalise,
)
from chargeback_engine.plugin import focus_mapper, iter_file_batches

WIDE = Context(prec=120)
HOSTILE = Path(__file__).parents[1] / "hostile" / "inputs"
REQUIRED = {
    "EffectiveCost": "1",
    "BillingCurrency": "USD",
    "ChargePeriodStart": "2026-10-01T00:00:00Z",
    "ChargePeriodEnd": "2026-10-02T00:00:00Z",
}


def cost_table(costs: pa.Array, **columns: pa.Array) -> pa.Table:
    n = len(costs)
    return pa.table({"BilledCost": costs, **{k: [v] * n for k, v in REQUIRED.items()}, **columns})


def text_of(value: Decimal) -> str:
    return format(value, "f")


def ledger_amounts(max_places: int) -> st.SearchStrategy[Decimal]:
    """Any amount the ledger can hold (below 1e20), with up to ``max_places`` digits after the point."""
    return st.integers(min_value=0, max_value=max_places).flatmap(
        lambda places: st.builds(
            lambda units, sign: Decimal(f"{sign * units}E-{places}"),
            st.integers(min_value=0, max_value=10 ** (20 + places) - 1),
            st.sampled_from([1, -1]),
        )
    )


@given(st.lists(ledger_amounts(LEDGER_SCALE), min_size=1, max_size=20))
def test_any_decimal_with_up_to_18_places_round_trips_exactly(amounts):
    rounding = Rounding()
    money, problems = exact_money(pa.array([text_of(a) for a in amounts]), column="BilledCost", rounding=rounding)
    assert problems == []
    assert money.to_pylist() == amounts
    assert rounding.as_details() == {}


@given(st.integers(min_value=0, max_value=LEDGER_SCALE), st.lists(st.integers(), min_size=1, max_size=20))
def test_decimal_columns_with_up_to_18_places_are_read_exactly(scale, units):
    amounts = [Decimal(f"{'-' if u < 0 else ''}{abs(u) % 10 ** (20 + scale)}E-{scale}") for u in units]
    rounding = Rounding()
    money, problems = exact_money(pa.array(amounts, pa.decimal128(38, scale)), column="BilledCost", rounding=rounding)
    assert (problems, money.to_pylist(), rounding.as_details()) == ([], amounts, {})


def test_a_decimal_column_too_large_for_the_ledger_is_located():
    costs = pa.array([Decimal(1), Decimal(10) ** 20], pa.decimal128(38, 2))
    with pytest.raises(InputError, match=r"f.parquet: row 2: BilledCost: .* does not fit the ledger"):
        normalise(cost_table(costs), source_id="f.parquet", rounding=Rounding())


@given(
    st.lists(
        st.integers(min_value=LEDGER_SCALE + 1, max_value=40).flatmap(
            lambda places: st.builds(
                lambda units: Decimal(f"{units}E-{places}"),
                st.integers(min_value=-(10 ** (19 + places)), max_value=10 ** (19 + places)),
            )
        ),
        min_size=1,
        max_size=20,
    )
)
def test_more_digits_round_half_to_even_and_the_residue_is_the_exact_difference(amounts):
    rounding = Rounding()
    money, problems = exact_money(pa.array([text_of(a) for a in amounts]), column="BilledCost", rounding=rounding)
    assert problems == []
    with localcontext(WIDE):
        expected = [a.quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN) for a in amounts]
        assert money.to_pylist() == expected
        moved = [a - e for a, e in zip(amounts, expected, strict=True) if a != e]
        details = rounding.as_details()
        if moved:
            assert details["BilledCost"]["values"] == len(moved)
            assert Decimal(details["BilledCost"]["residue"]) == sum(moved, Decimal(0))
        else:
            assert details == {}


@pytest.mark.parametrize(
    ("text", "kept", "residue"),
    [
        ("1e-21", "0", "0.000000000000000000001"),
        ("-2.5e-18", "-0.000000000000000002", "-0.0000000000000000005"),
        ("0.0000000000000000015", "0.000000000000000002", "-0.0000000000000000005"),
        ("1e-400", "0", "0." + "0" * 399 + "1"),  # beyond any vectorised decimal: read value by value
        ("12.3456789012345678901234567890123456789012345", "12.345678901234567890", "1.234567890123456789012345e-19"),
    ],
)
def test_each_rounded_value_moves_exactly_its_residue(text, kept, residue):
    rounding = Rounding()
    money, _ = exact_money(pa.array([text]), column="c", rounding=rounding)
    assert money.to_pylist() == [Decimal(kept)]
    assert rounding.by_column["c"] == (1, Decimal(residue))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NaN", '"NaN" is not a finite number'),
        ("inf", '"inf" is not a finite number'),
        ("1_000", '"1_000" is not a decimal number'),
        ("12,5", '"12,5" is not a decimal number'),
        ("1e20", '"1e20" does not fit the ledger (amounts are below 1e20)'),
        ("99999999999999999999.9999999999999999995", "does not fit the ledger"),  # rounds up to 1e20
    ],
)
def test_values_that_are_not_ledger_money_are_located(value, message):
    with pytest.raises(InputError) as caught:
        normalise(cost_table(pa.array(["1", value])), source_id="f.csv", rounding=Rounding())
    assert str(caught.value).startswith("f.csv: row 2: BilledCost: ")
    assert message in str(caught.value)


def test_doubles_nan_and_infinity_are_located():
    with pytest.raises(InputError, match=r'f.parquet: row 2: BilledCost: "nan" is not a finite number'):
        normalise(cost_table(pa.array([1.5, float("nan")])), source_id="f.parquet", rounding=Rounding())


def test_an_empty_string_is_null_in_money_text_and_timestamp_columns():
    table = normalise(
        cost_table(
            pa.array(["1.5", "2"]),
            ListCost=pa.array(["", " "]),
            RegionId=pa.array(["", "eu"]),
            BillingPeriodStart=pa.array(["", "2026-10-01"]),
        ),
        source_id="f.parquet",
        rounding=Rounding(),
    )
    assert table["ListCost"].to_pylist() == [None, None]
    assert table["RegionId"].to_pylist() == [None, "eu"]
    assert table["BillingPeriodStart"].null_count == 1
    with pytest.raises(InputError, match="row 2: BilledCost: is missing"):
        normalise(
            cost_table(pa.array(["1.5", ""])).set_column(1, "EffectiveCost", pa.array(["1", ""])),
            source_id="f.parquet",
            rounding=Rounding(),
        )


def test_dictionary_encoded_text_keeps_its_encoding_and_loses_its_blanks():
    region = pa.array(["eu", "", "eu"]).dictionary_encode()
    table = normalise(cost_table(pa.array(["1", "2", "3"]), RegionId=region), source_id="f", rounding=Rounding())
    assert pa.types.is_dictionary(table["RegionId"].type)
    assert table["RegionId"].to_pylist() == ["eu", None, "eu"]


def test_tags_stored_as_a_map_become_the_json_object_text():
    tags = pa.array([[("team", "web"), ("env", "prod")], [], None], pa.map_(pa.string(), pa.string()))
    table = normalise(cost_table(pa.array(["1", "2", "3"]), Tags=tags), source_id="f", rounding=Rounding())
    assert table["Tags"].to_pylist() == ['{"team":"web","env":"prod"}', "{}", None]


def test_tag_depth_is_bounded_and_a_lone_surrogate_is_an_error_not_a_crash():
    depth = MAX_TAG_DEPTH - 1  # arrays inside the object
    assert canonical_tags('{"a":' + "[" * depth + "]" * depth + "}")
    with pytest.raises(ValueError, match="more than 32 deep"):
        canonical_tags('{"a":' + "[" * 5000 + "]" * 5000 + "}")
    assert (
        canonical_tags('{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
        == '{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'
    )
    with pytest.raises(ValueError, match=r"lone surrogate \(\\udc00\)"):
        canonical_tags('{"a":"\\udc00"}')


def test_timestamps_without_an_offset_are_utc_and_bad_ones_are_located():
    table = normalise(
        cost_table(pa.array(["1"]), BillingPeriodStart=pa.array(["2026-10-01 00:00:00"])),
        source_id="f",
        rounding=Rounding(),
    )
    assert table["BillingPeriodStart"][0].as_py().isoformat() == "2026-10-01T00:00:00+00:00"
    with pytest.raises(InputError, match=r'f: row 1: BillingPeriodStart: "yesterday" is not an ISO 8601 date-time'):
        normalise(
            cost_table(pa.array(["1"]), BillingPeriodStart=pa.array(["yesterday"])), source_id="f", rounding=Rounding()
        )


def test_a_required_column_a_source_lacks_is_named_once():
    with pytest.raises(InputError, match="^s: row 1: BillingCurrency: the column is missing$"):
        normalise(
            cost_table(pa.array(["1", "2"])).drop_columns(["BillingCurrency"]), source_id="s", rounding=Rounding()
        )


# --- a file is never accepted from a cloud export and refused from disk (or the reverse) ----


def read_as_export(path: Path) -> pa.Table:
    """The file read as the cloud collectors read a FOCUS export (S3, Blob storage)."""
    mapper = focus_mapper(str(path))
    parts, read = [], 0
    with path.open("rb") as stream:
        for batch in iter_file_batches(stream, name=str(path), columns=mapper.columns):
            parts.append(mapper.map(batch, where=str(path), first_row=read + 1))
            read += batch.num_rows
    return pa.concat_tables(parts)


def outcome(read, path: Path) -> str | pa.Table:  # type: ignore[no-untyped-def]
    try:
        return plain(read(path))
    except InputError as exc:
        return str(exc)


with (HOSTILE / "expected.csv").open(newline="", encoding="utf-8") as _table:
    FILES = [row["file"] for row in csv.DictReader(_table)]


@pytest.mark.parametrize("name", FILES)
def test_disk_and_cloud_export_read_every_hostile_file_alike(name):
    path = HOSTILE / name
    from_disk = outcome(lambda p: read_focus_file(str(p)).table, path)
    from_export = outcome(read_as_export, path)
    if isinstance(from_disk, str):
        assert from_export == from_disk
    else:
        assert isinstance(from_export, pa.Table), from_export
        assert from_export.equals(from_disk)


def test_a_parquet_string_money_column_holding_empty_strings_reads_alike_from_disk_and_export(tmp_path):
    table = cost_table(pa.array(["1.5", "2.25"]), ListCost=pa.array(["", "3"]), Tags=pa.array(['{"a":"b"}', ""]))
    path = tmp_path / "focus.parquet"
    pq.write_table(table, path)
    from_disk = plain(read_focus_file(str(path)).table)
    assert from_disk["ListCost"].to_pylist() == [None, Decimal(3)]
    assert plain(read_as_export(path)).equals(from_disk)


def test_older_focus_names_read_alike_from_disk_and_export(tmp_path):
    path = tmp_path / "preview.csv"
    path.write_text(
        "BilledCost,AmortizedCost,ChargeType,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,Region\n"
        "1.5,1.25,Usage,USD,2026-10-01,2026-10-02,eu-west-1\n",
        encoding="utf-8",
    )
    from_disk = plain(read_focus_file(str(path)).table)
    assert from_disk["EffectiveCost"].to_pylist() == [Decimal("1.25")]
    assert from_disk["RegionId"].to_pylist() == ["eu-west-1"]
    assert plain(read_as_export(path)).equals(from_disk)
