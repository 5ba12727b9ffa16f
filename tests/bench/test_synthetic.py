"""The synthetic month: reproducible to the byte, shaped as documented, read back exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from chargeback_engine.bench.synthetic import (
    SAMPLE_SHAPE,
    Shape,
    generate,
    write_csv,
    write_parquet,
)
from chargeback_engine.collectors.focus_files import read_focus_file
from chargeback_engine.focus import COST_TABLE_SCHEMA

SAMPLE = Path(__file__).parents[2] / "policies" / "data" / "acme-focus-2026-10.csv"
SMALL = Shape(rows=5_000, accounts=20, billing_accounts=2, resources=800)


def test_the_bundled_sample_is_exactly_what_the_generator_writes(tmp_path):
    assert write_csv(SAMPLE_SHAPE, tmp_path / "sample.csv").read_bytes() == SAMPLE.read_bytes()


def test_same_shape_same_bytes_and_another_seed_differs(tmp_path):
    a = write_parquet(SMALL, tmp_path / "a.parquet").read_bytes()
    assert write_parquet(SMALL, tmp_path / "b.parquet").read_bytes() == a
    other = Shape(rows=5_000, accounts=20, billing_accounts=2, resources=800, seed=7)
    assert write_parquet(other, tmp_path / "c.parquet").read_bytes() != a


def test_the_month_has_the_documented_shape():
    shape = Shape(rows=20_000, accounts=200, resources=5_000)
    table = pa.concat_tables(generate(shape))
    assert table.num_rows == 20_000
    assert table.schema.names == [f.name for f in COST_TABLE_SCHEMA if not f.name.startswith("x_")]
    assert pc.count_distinct(table["SubAccountId"]).as_py() == 200
    assert pc.count_distinct(table["BillingAccountId"]).as_py() == 3
    assert pc.count_distinct(table["ServiceName"]).as_py() == 60
    categories = dict(
        zip(*table.group_by("ChargeCategory").aggregate([("ChargeCategory", "count")]).to_pydict().values())
    )
    assert categories["Purchase"] == 200 + 3  # a support fee per account, an RI purchase per billing account
    assert 0.005 < categories["Credit"] / 20_000 < 0.03
    one_time = table.filter(
        pc.and_(pc.equal(table["ChargeCategory"], "Purchase"), pc.equal(table["ChargeFrequency"], "One-Time"))
    )
    assert one_time.num_rows == 3 and one_time["EffectiveCost"].to_pylist() == [Decimal(0)] * 3
    credits = table.filter(pc.equal(table["ChargeCategory"], "Credit"))
    assert all(c < 0 for c in credits["BilledCost"].to_pylist())
    tags = [json.loads(t) if t else {} for t in table["Tags"].to_pylist()]
    keys = {k for t in tags for k in t}
    assert {"cost-center", "team", "project", "environment", "shared", "owner", "CostCenter", " Team "} <= keys
    usage_untagged = sum(1 for t, c in zip(tags, table["ChargeCategory"].to_pylist()) if c == "Usage" and not t)
    assert 0.05 < usage_untagged / categories["Usage"] < 0.35


def test_the_collector_reads_the_parquet_month_back_exactly(tmp_path):
    path = write_parquet(SMALL, tmp_path / "m.parquet")
    source = read_focus_file(str(path))
    written = pq.read_table(path)
    assert source.table.num_rows == SMALL.rows
    assert pc.sum(source.table["BilledCost"]) == pc.sum(written["BilledCost"])
    assert source.table["ResourceId"].cast(pa.string()) == written["ResourceId"]


def test_too_small_a_month_is_refused():
    with pytest.raises(ValueError, match="needs at least 204 rows"):
        Shape(rows=100)
