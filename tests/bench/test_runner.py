"""The benchmark runner measures in a fresh process and reports what it measured."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chargeback_engine.bench import spark_vs_duckdb as spark_bench
from chargeback_engine.bench.measure import (
    Measurement,
    Step,
    run_benchmark,
    synthetic_month,
)
from chargeback_engine.cli import main


def test_collect_benchmark_runs_in_a_subprocess_and_caches_the_month(tmp_path):
    (m,) = run_benchmark("collect", [2_000], cache_dir=tmp_path)
    assert (m.stage, m.rows) == ("collect", 2_000)
    assert m.seconds > 0 and m.cpu_seconds > 0
    assert m.peak_rss_bytes > 10 * 2**20  # a Python process with pyarrow loaded, at least
    cached = synthetic_month(2_000, tmp_path)
    assert cached.exists() and list(tmp_path.iterdir()) == [cached]


def test_bench_cli_prints_rows_per_second_and_peak_memory(tmp_path):
    result = CliRunner().invoke(main, ["bench", "collect", "--rows", "2000", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert "rows/s" in header and "peak RSS" in header
    assert row.split()[:2] == ["collect", "2,000"]


def test_generate_writes_the_sample_or_a_month(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "generate", "--rows", "1000", "--out", str(tmp_path / "m.parquet")])
    assert result.exit_code == 0 and (tmp_path / "m.parquet").exists()
    result = runner.invoke(main, ["bench", "generate", "--sample", "--out", str(tmp_path / "s.csv")])
    assert result.output == f"wrote 600 lines to {tmp_path / 's.csv'}\n"


def test_plane_comparison_hashes_each_runs_outputs_and_removes_them(tmp_path):
    """Two runs of one plane stand in for the two planes: the same bytes, and only the
    month is left on disk (at 10M lines each run's outputs are tens of GB)."""
    results = spark_bench.run(2_000, tmp_path, engines=("duckdb", "duckdb"))
    assert [(m.engine, m.rows) for m in results] == [("duckdb", 2_000)] * 2
    assert results[0].ledger_rows == results[1].ledger_rows > 2_000
    assert [p.name for p in tmp_path.iterdir()] == ["focus-2000-seed20261001.parquet"]


def test_plane_comparison_names_the_files_that_differ():
    same = {"manifest.json": "sha256:1", "summary.csv": "sha256:2"}
    spark_bench.assert_identical([("duckdb", same), ("spark", dict(same))])
    with pytest.raises(AssertionError, match="summary.csv differ between duckdb and spark"):
        spark_bench.assert_identical([("duckdb", same), ("spark", {**same, "summary.csv": "sha256:3"})])
    with pytest.raises(AssertionError, match="spark wrote other files"):
        spark_bench.assert_identical([("duckdb", same), ("spark", {"manifest.json": "sha256:1"})])


def test_engine_benchmark_reports_each_step_of_the_run(tmp_path):
    (m,) = run_benchmark("engine", [2_000], cache_dir=tmp_path)
    names = [s.name for s in m.steps]
    assert names[:3] == ["collect", "decide", "allocate"] and "check" in names
    assert names[-5:] == [
        "write allocations",
        "write decisions",
        "write summary",
        "write schedule",
        "write manifest",
    ]  # the default outputs
    assert sum(s.seconds for s in m.steps) <= m.seconds
    assert all(s.cpu_seconds >= 0 for s in m.steps)
    peaks = [s.peak_rss_bytes for s in m.steps]
    assert peaks == sorted(peaks) and peaks[-1] <= m.peak_rss_bytes
    result = CliRunner().invoke(main, ["bench", "engine", "--rows", "2000", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "steps of engine at 2,000 rows" in result.output and "write decisions" in result.output
    assert "allocating" in result.output and "writing outputs" in result.output


def test_the_two_phases_add_up_to_the_steps():
    steps = (
        Step("collect", 2.0, 3.0, 100),
        Step("check", 1.0, 1.5, 300),
        Step("write allocations", 4.0, 7.0, 250),
        Step("write manifest", 0.5, 0.5, 310),
    )
    allocating, writing = Measurement("engine", 1_000, 8.0, 12.0, 310, steps).phases()
    assert (allocating.seconds, allocating.cpu_seconds, allocating.peak_rss_bytes) == (3.0, 4.5, 300)
    assert (writing.seconds, writing.cpu_seconds, writing.peak_rss_bytes) == (4.5, 7.5, 310)
