"""``SparkPlane.finish``: the executors' Parquet files, read through a RunStore with DuckDB's types.

The plane is driven directly (no kernel): one decision splits every line 1:2 between two
cost centers, so what the store shows can be checked line by line.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from chargeback_engine.engine import spark as spark_module
from chargeback_engine.engine import store as store_module
from chargeback_engine.engine.dataplane import SPLIT_SCHEMA, RunInfo
from chargeback_engine.engine.duck import DuckDBPlane
from chargeback_engine.engine.store import LEDGER_ORDER, LINE
from chargeback_engine.exporters.ledger_files import write_parquet
from chargeback_engine.focus import COST_TABLE_SCHEMA
from chargeback_engine.periods import Period
from tests.engine.helpers import line_items

AMOUNTS = ["1", "-0.0000000001", "0.0000000002", "999999999999999.9999999999", "-3.3333333333", "0.01", "7"] * 5
RUN = RunInfo("r-test", Period.parse("2026-10"), "EffectiveCost", "1", "sha256:policy")
SPLITS = pa.Table.from_pylist(
    [
        {
            "decision_id": "d1",
            "cost_center": cc,
            "weight": Decimal(w),
            "position": i,
            "months": None,
            "rule_id": "r1",
            "method": "fixed",
            "category": "direct",
        }
        for i, (cc, w) in enumerate([("A", 1), ("B", 2)])
    ],
    SPLIT_SCHEMA,
)


def duckdb_types(schema: pa.Schema) -> list[tuple[str, str]]:
    """The column types DuckDB gives ``_line`` and an Arrow table of ``schema``: the DuckDB plane's."""
    con = duckdb.connect()
    con.register("t", schema.insert(0, pa.field(LINE, pa.int64())).empty_table())
    return [(name, kind) for name, kind, *_ in con.sql("DESCRIBE t").fetchall()]


def types(store, query: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(name, kind) for name, kind, *_ in store.sql(f"DESCRIBE {query}").fetchall()]


def run_plane(plane, records: pa.Table):  # type: ignore[no-untyped-def]
    plane.load(records, RUN)
    plane.allocate(pa.table({"decision_id": ["d1"]}), SPLITS)
    store = plane.finish()
    plane.close()  # after finish: leaves the store's data alone
    return store


@pytest.fixture
def finished(spark, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A finished run of ``AMOUNTS`` in row groups of 4 lines (Spark reads them in several splits)."""
    monkeypatch.setattr(spark_module, "ROW_GROUP_ROWS", 4)
    records = line_items([{"ServiceName": f"s{i % 3}", "EffectiveCost": a} for i, a in enumerate(AMOUNTS)])
    store = run_plane(spark_module.SparkPlane(spark, workdir=tmp_path), records)
    yield records, store, tmp_path
    store.close()


def test_files_have_duckdbs_types(finished) -> None:  # type: ignore[no-untyped-def]
    """As written, before any cast of the store's: the DuckDB plane's narrow ledger types
    (exact decimals, the same ints), and its line items' types (UTC timestamps)."""
    records, store, workdir = finished
    (run_dir,) = workdir.iterdir()
    ledger = store_module.parquet_source(sorted((run_dir / "ledger").glob("*.parquet")))
    lines = store_module.parquet_source([run_dir / "records.parquet"])
    duck_store = run_plane(DuckDBPlane(), records)
    narrow = "line, period, cost_center, amount, stage, decision"
    assert types(store, f"SELECT {narrow} FROM {ledger}") == types(
        duck_store, f"SELECT {narrow} FROM {store_module.IN_ORDER}"
    )
    assert types(store, f"SELECT {LINE}, * EXCLUDE ({LINE}) FROM {lines}") == duckdb_types(COST_TABLE_SCHEMA)
    duck_store.close()


def test_the_store_is_the_duckdb_planes(finished, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """Same rows and types, and the same bytes when an exporter writes the streamed ledger."""
    records, spark_store, _ = finished
    duck_store = run_plane(DuckDBPlane(), records)
    for view in ("ledger", "records"):
        assert types(spark_store, view) == types(duck_store, view)
    query = f"SELECT * FROM records ORDER BY {LINE}"
    assert spark_store.table(query).equals(duck_store.table(query))
    out = tmp_path_factory.mktemp("outputs")
    written = []
    for name, store in (("spark", spark_store), ("duckdb", duck_store)):
        rows = store.ledger(record_columns=["Tags"])
        written.append(write_parquet(rows, out / f"{name}.parquet", rows.schema).read_bytes())
    assert written[0] == written[1]
    duck_store.close()


def test_records_keep_their_load_position(finished) -> None:  # type: ignore[no-untyped-def]
    records, store, _ = finished
    back = store.table(f"SELECT * FROM records ORDER BY {LINE}")
    assert back[LINE].to_pylist() == list(range(records.num_rows))
    assert back.drop_columns([LINE]).cast(COST_TABLE_SCHEMA).equals(records)


def test_ledger_rows_point_at_their_line_and_conserve_it(finished) -> None:  # type: ignore[no-untyped-def]
    records, store, _ = finished
    ledger = store.table(f"SELECT * FROM ledger ORDER BY {LEDGER_ORDER}")
    assert ledger.num_rows == 2 * records.num_rows
    row_of_line = dict(enumerate(records["x_SourceRow"].to_pylist()))
    assert all(
        row_of_line[line] == row
        for line, row in zip(ledger[LINE].to_pylist(), ledger["source_row"].to_pylist(), strict=True)
    )
    per_line = store.sql("SELECT _line, sum(amount) FROM ledger GROUP BY _line ORDER BY _line").fetchall()
    assert per_line == [(i, Decimal(a)) for i, a in enumerate(AMOUNTS)]
    expected_id = store.sql(
        "SELECT md5(x_SourceId || '#' || CAST(x_SourceRow AS VARCHAR)) FROM records ORDER BY _line"
    ).fetchall()
    assert store.sql("SELECT DISTINCT _line, record_id FROM ledger ORDER BY _line").fetchall() == [
        (i, h) for i, (h,) in enumerate(expected_id)
    ]


def test_closing_the_store_removes_the_files(finished) -> None:  # type: ignore[no-untyped-def]
    _, store, workdir = finished
    (run_dir,) = workdir.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["ledger", "records.parquet"]
    store.close()
    assert list(workdir.iterdir()) == []


def test_closing_an_unfinished_plane_removes_its_files(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plane = spark_module.SparkPlane(spark, workdir=tmp_path)
    plane.load(line_items([{"EffectiveCost": "1"}]), RUN)
    assert list(tmp_path.iterdir())
    plane.close()
    assert list(tmp_path.iterdir()) == []
