"""The focus-files collector: formats, exact money, the tag rule, and every bad-input message."""

from __future__ import annotations

import csv
import gzip
import json
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine.collectors.focus_files import (
    FocusFilesCollector,
    expand_paths,
)
from chargeback_engine.errors import InputError
from chargeback_engine.focus import COST_TABLE_SCHEMA, ENCODED_TEXT, plain, plain_schema
from chargeback_engine.money import LEDGER_QUANTUM
from chargeback_engine.normalise import Rounding, normalise
from chargeback_engine.periods import Period
from chargeback_engine.plugins import build_registry, get_plugin_manager

SAMPLE = Path(__file__).parents[2] / "policies" / "data" / "acme-focus-2026-10.csv"

BASE = {
    "BilledCost": "1.5",
    "EffectiveCost": "1.5",
    "BillingCurrency": "USD",
    "ChargePeriodStart": "2026-10-01T00:00:00Z",
    "ChargePeriodEnd": "2026-10-02T00:00:00Z",
    "ServiceName": "Amazon EC2",
    "Tags": '{"team":"web"}',
}


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(BASE)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def rows(n: int = 3, **changes: str) -> list[dict[str, str]]:
    return [{**BASE, **changes} for _ in range(n)]


def collect(*paths: Path | str, fmt: str = "auto"):  # type: ignore[no-untyped-def]
    return list(FocusFilesCollector().collect({"paths": [str(p) for p in paths], "format": fmt}, Period(2026, 10)))


def error_of(*paths: Path | str) -> str:
    with pytest.raises(InputError) as info:
        collect(*paths)
    return str(info.value)


# --- reading -----------------------------------------------------------------------------


def test_registered_through_the_entry_point_like_a_third_party_plugin():
    registry = build_registry(get_plugin_manager())
    assert registry.collectors["focus-files"].plugin == "focus-files"
    assert isinstance(registry.collector("focus-files"), FocusFilesCollector)


def test_reads_the_bundled_sample_exactly():
    (source,) = collect(SAMPLE)
    table = source.table
    assert plain_schema(table.schema) == COST_TABLE_SCHEMA
    assert table.num_rows == 600
    assert sum(table["BilledCost"].to_pylist()) == Decimal("126217.808686")
    assert source.source_id == str(SAMPLE)
    assert set(table["x_SourceId"].to_pylist()) == {str(SAMPLE)}
    assert table["x_SourceRow"].to_pylist() == list(range(1, 601))
    assert source.details["currencies"] == ["USD"]
    assert source.version == "sha256:" + source.details["sha256"]


def test_csv_parquet_and_gzip_give_the_same_table(tmp_path):
    csv_path = write_csv(tmp_path / "a.csv", rows(4, BilledCost="0.1234567891", EffectiveCost="-3"))
    (from_csv,) = collect(csv_path)
    parquet_path = tmp_path / "a.parquet"
    pq.write_table(from_csv.table.drop_columns(["x_SourceId", "x_SourceRow"]), parquet_path)
    gz_path = tmp_path / "a.csv.gz"
    gz_path.write_bytes(gzip.compress(csv_path.read_bytes()))
    (from_parquet,) = collect(parquet_path)
    (from_gzip,) = collect(gz_path)
    strip = ["x_SourceId"]
    for source in (from_csv, from_parquet, from_gzip):  # text is read dictionary-encoded from either format
        assert source.table.schema.field("ServiceName").type == ENCODED_TEXT
    assert plain(from_parquet.table).drop_columns(strip) == plain(from_csv.table).drop_columns(strip)
    assert plain(from_gzip.table).drop_columns(strip) == plain(from_csv.table).drop_columns(strip)
    assert from_csv.table["BilledCost"][0].as_py() == Decimal("0.1234567891")


def test_directories_and_globs_expand_sorted_and_each_file_is_one_source(tmp_path):
    (tmp_path / "sub").mkdir()
    b = write_csv(tmp_path / "sub" / "b.csv", rows(2))
    a = write_csv(tmp_path / "a.csv", rows(1))
    (tmp_path / "notes.txt").write_text("not a cost file")
    assert expand_paths([str(tmp_path)]) == [str(a), str(b)]
    assert expand_paths([str(tmp_path / "**" / "*.csv")]) == [str(a), str(b)]
    assert expand_paths([str(a), str(tmp_path / "*.csv")]) == [str(a)]  # no duplicates
    sources = collect(tmp_path)
    assert [s.source_id for s in sources] == [str(a), str(b)]
    assert [s.table.num_rows for s in sources] == [1, 2]


def test_one_path_or_several(tmp_path):
    a = write_csv(tmp_path / "a.csv", rows(1))
    b = write_csv(tmp_path / "b.csv", rows(2))
    collector = FocusFilesCollector()
    assert [s.source_id for s in collector.collect({"path": str(a)}, Period(2026, 10))] == [str(a)]
    assert [s.source_id for s in collector.collect({"paths": [str(b), str(a)]}, Period(2026, 10))] == [str(b), str(a)]


def test_format_can_be_forced_and_is_sniffed_without_a_suffix(tmp_path):
    table = collect(write_csv(tmp_path / "a.csv", rows(2)))[0].table.drop_columns(["x_SourceId", "x_SourceRow"])
    odd = tmp_path / "export.bin"
    pq.write_table(table, odd)
    assert collect(odd)[0].details["format"] == "parquet"
    assert collect(odd, fmt="parquet")[0].table.num_rows == 2


def test_older_and_newer_focus_column_names_are_mapped(tmp_path):
    columns = [
        "BilledCost",
        "AmortizedCost",
        "BillingCurrency",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ChargeType",
        "UsageQuantity",
        "UsageUnit",
        "Region",
        "ServiceProviderName",
    ]
    row = {
        "BilledCost": "2",
        "AmortizedCost": "1.75",
        "BillingCurrency": "EUR",
        "ChargeType": "Usage",
        "ChargePeriodStart": "2026-10-01",
        "ChargePeriodEnd": "2026-10-02",
        "UsageQuantity": "3.5",
        "UsageUnit": "Hours",
        "Region": "eu-west-1",
        "ServiceProviderName": "AWS",
    }
    (source,) = collect(write_csv(tmp_path / "v05.csv", [row], columns))
    got = source.table.to_pylist()[0]
    assert got["EffectiveCost"] == Decimal("1.75")
    assert got["ChargeCategory"] == "Usage"
    assert got["ConsumedQuantity"] == Decimal("3.5")
    assert (got["ConsumedUnit"], got["RegionId"], got["ProviderName"]) == ("Hours", "eu-west-1", "AWS")


def test_a_current_name_wins_over_its_older_alias(tmp_path):
    columns = [*BASE, "AmortizedCost"]
    (source,) = collect(write_csv(tmp_path / "both.csv", rows(1, AmortizedCost="99"), columns))
    assert source.table["EffectiveCost"][0].as_py() == Decimal("1.5")


def test_timestamps_without_offset_are_utc_and_offsets_are_honoured(tmp_path):
    path = write_csv(
        tmp_path / "t.csv",
        [
            {**BASE, "ChargePeriodStart": "2026-10-01 00:00:00"},
            {**BASE, "ChargePeriodStart": "2026-10-01T02:00:00+02:00"},
        ],
    )
    starts = collect(path)[0].table["ChargePeriodStart"].to_pylist()
    assert starts[0] == starts[1]
    assert starts[0].isoformat() == "2026-10-01T00:00:00+00:00"


def test_every_currency_found_is_exposed(tmp_path):
    path = write_csv(tmp_path / "fx.csv", [*rows(2), *rows(1, BillingCurrency="EUR")])
    assert collect(path)[0].details["currencies"] == ["EUR", "USD"]


def test_version_is_the_content_hash(tmp_path):
    path = write_csv(tmp_path / "a.csv", rows(2))
    first = collect(path)[0].version
    assert collect(path)[0].version == first
    write_csv(path, rows(2, BilledCost="1.51"))
    assert collect(path)[0].version != first


# --- the tag rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ('{"team":"web","cost-center":"CC-1"}', {"team": "web", "cost-center": "CC-1"}),
        ('{"shared":true,"spot":false}', {"shared": "true", "spot": "false"}),
        ('{"ticket":4711,"ratio":1.50,"big":1e3}', {"ticket": "4711", "ratio": "1.50", "big": "1e3"}),
        ('{"team":null,"env":"prod"}', {"env": "prod"}),
        ('{"list":[1,"a"],"obj":{"k":"v"}}', {"list": '[1,"a"]', "obj": '{"k":"v"}'}),
        ('{" Team ":"web","CostCenter":"CC-1"}', {" Team ": "web", "CostCenter": "CC-1"}),
        ("{}", {}),
    ],
)
def test_tag_values_that_are_not_strings_become_their_json_text(tmp_path, written, read):
    (source,) = collect(write_csv(tmp_path / "tags.csv", rows(1, Tags=written)))
    assert json.loads(source.table["Tags"][0].as_py()) == read


def test_empty_tags_are_null(tmp_path):
    (source,) = collect(write_csv(tmp_path / "tags.csv", rows(2, Tags="")))
    assert source.table["Tags"].null_count == 2


# --- exact money -------------------------------------------------------------------------


def test_parquet_doubles_go_through_their_shortest_repr(tmp_path):
    values = [0.1, 0.1 + 0.2, 1e-7, 123456.789, -2.675, 5e-19, 2.5e-19]
    table = pa.table(
        {
            "BilledCost": pa.array(values, pa.float64()),
            "EffectiveCost": pa.array(values, pa.float32()).cast(pa.float64()),
            "BillingCurrency": ["USD"] * len(values),
            "ChargePeriodStart": pa.array([0] * len(values), pa.timestamp("s")),
            "ChargePeriodEnd": pa.array([86400] * len(values), pa.timestamp("s")),
        }
    )
    pq.write_table(table, tmp_path / "doubles.parquet")
    (source,) = collect(tmp_path / "doubles.parquet")
    assert source.table["BilledCost"].to_pylist() == [
        Decimal("0.1"),
        Decimal("0.30000000000000004"),
        Decimal("0.0000001"),
        Decimal("123456.789"),
        Decimal("-2.675"),
        Decimal(0),
        Decimal(0),  # 5e-19 and 2.5e-19 round half to even: 0
    ]
    assert source.details["rounding"]["BilledCost"] == {"values": 2, "residue": "0.00000000000000000075"}


# The properties of the normaliser itself are in test_normalise.py.


@given(st.lists(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False), min_size=1, max_size=8))
def test_doubles_read_as_their_repr_rounded_to_the_ledger_scale(values):
    raw = pa.table(
        {
            "BilledCost": pa.array(values, pa.float64()),
            **{c: [BASE[c]] * len(values) for c in BASE if c != "BilledCost"},
        }
    )
    table = normalise(raw, source_id="mem", rounding=Rounding())
    wide = Context(prec=80)
    expected = [Decimal(repr(v)).quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN, context=wide) for v in values]
    assert table["BilledCost"].to_pylist() == expected


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("BilledCost", "12,50", 'row 2: BilledCost: "12,50" is not a decimal number'),
        ("BilledCost", "NaN", 'row 2: BilledCost: "NaN" is not a finite number'),
        ("EffectiveCost", "-Infinity", 'row 2: EffectiveCost: "-Infinity" is not a finite number'),
        ("BilledCost", "1e20", 'row 2: BilledCost: "1e20" does not fit the ledger (amounts are below 1e20)'),
        ("EffectiveCost", "", "row 2: EffectiveCost: is missing"),
        ("ChargePeriodStart", "01/10/2026", 'row 2: ChargePeriodStart: "01/10/2026" is not an ISO 8601 date-time'),
        ("ChargePeriodEnd", "", "row 2: ChargePeriodEnd: is missing"),
        ("BillingCurrency", "usd", 'row 2: BillingCurrency: "usd" is not an ISO 4217 currency code'),
        ("BillingCurrency", "", "row 2: BillingCurrency: is missing"),
        (
            "Tags",
            "{team: web}",
            (
                'row 2: Tags: "{team: web}" is not valid JSON '
                "(Expecting property name enclosed in double quotes at character 2)"
            ),
        ),
        ("Tags", '{"a":"1","a":"2"}', 'row 2: Tags: "{"a":"1","a":"2"}" has the key \'a\' more than once'),
        ("Tags", '{"a":NaN}', 'row 2: Tags: "{"a":NaN}" is not valid JSON (NaN is not a JSON number)'),
        ("Tags", '["team"]', 'row 2: Tags: "["team"]" is not a JSON object'),
    ],
)
def test_a_bad_cell_names_file_row_and_column(tmp_path, column, value, message):
    path = write_csv(tmp_path / "bad.csv", [BASE, {**BASE, column: value}, BASE])
    assert error_of(path) == f"{path}: {message}"


def test_every_bad_row_is_reported_in_row_order(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [{**BASE, "Tags": "[]"}, BASE, {**BASE, "BilledCost": "x"}])
    assert error_of(path).splitlines() == [
        f'{path}: row 1: Tags: "[]" is not a JSON object',
        f'{path}: row 3: BilledCost: "x" is not a decimal number',
    ]


def test_long_reports_are_capped(tmp_path):
    path = write_csv(tmp_path / "bad.csv", rows(25, BilledCost="x"))
    lines = error_of(path).splitlines()
    assert len(lines) == 21
    assert lines[-1] == "... and 5 more problem(s)"


def test_a_row_with_the_wrong_number_of_fields_is_named(tmp_path):
    path = write_csv(tmp_path / "ragged.csv", rows(3))
    text = path.read_text().splitlines()
    text[2] = text[2] + ",extra"
    path.write_text("\n".join(text) + "\n")
    assert error_of(path) == f"{path}: row 2: expected 7 fields, found 8"


def test_a_missing_required_column_is_named_with_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "nocur.csv", rows(1), [c for c in BASE if c != "BillingCurrency"])
    message = error_of(path)
    assert message.startswith(f"{path}: missing FOCUS column(s) BillingCurrency; the file has BilledCost,")


def test_parquet_decimals_finer_than_the_ledger_are_rounded_and_reported(tmp_path):
    table = pa.table(
        {
            "BilledCost": pa.array([Decimal("1.00000000000000000150"), Decimal("2.5")], pa.decimal128(38, 20)),
            "EffectiveCost": pa.array([Decimal(1), Decimal(2)], pa.decimal128(38, 18)),
            "BillingCurrency": ["USD"] * 2,
            "ChargePeriodStart": ["2026-10-01"] * 2,
            "ChargePeriodEnd": ["2026-10-02"] * 2,
        }
    )
    pq.write_table(table, tmp_path / "fine.parquet")
    (source,) = collect(tmp_path / "fine.parquet")
    assert source.table["BilledCost"].to_pylist() == [Decimal("1.000000000000000002"), Decimal("2.5")]
    assert source.details["rounding"] == {"BilledCost": {"values": 1, "residue": "-0.0000000000000000005"}}


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    assert error_of(path).startswith(f"{path}: not a readable Parquet file")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda d: (d / "empty.csv").write_text("") and d / "empty.csv",
            "{}/empty.csv: the file is empty (not even a header row)",
        ),
        (lambda d: d / "absent.csv", "{}/absent.csv: no such file or directory"),
        (lambda d: d / "*.parquet", "{}/*.parquet: no file matches this pattern"),
        (lambda d: d, "{}: directory holds no .csv or .parquet files"),
    ],
)
def test_empty_or_absent_inputs_say_so(tmp_path, setup, message):
    target = setup(tmp_path) or tmp_path / "empty.csv"
    assert error_of(target) == message.format(tmp_path)


def test_files_without_line_items_are_an_error(tmp_path):
    a = write_csv(tmp_path / "a.csv", [])
    b = write_csv(tmp_path / "b.csv", [])
    assert error_of(a, b) == f"no line items in {a}, {b}: every file is empty"
    assert [s.table.num_rows for s in collect(a, write_csv(tmp_path / "c.csv", rows(1)))] == [0, 1]
