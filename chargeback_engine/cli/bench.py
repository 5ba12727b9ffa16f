"""``chargeback bench``: measured performance figures (rows/s, time, peak memory).

Synthetic FOCUS months (``generate``) feed the pipeline benchmarks (``collect``, ``engine``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from chargeback_engine.bench.measure import Measurement, default_cache_dir, run_benchmark
from chargeback_engine.bench.synthetic import (
    DEFAULT_SEED,
    SAMPLE_SHAPE,
    Shape,
    write_csv,
    write_parquet,
)

ROWS = click.option(
    "--rows",
    "sizes",
    type=click.IntRange(min=1000),
    multiple=True,
    default=(1_000_000,),
    show_default=True,
    help="Lines in the synthetic month (repeatable: one run per size).",
)
CACHE = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where generated months are kept between runs [default: {default_cache_dir()}].",
)


@click.group("bench")
def bench() -> None:
    """Run a benchmark and print its measurements (rows/s, time, peak memory)."""


@bench.command()
@click.option("--rows", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option(
    "--sample", is_flag=True, help="Write the bundled sample month (policies/data) instead; ignores --rows and --seed."
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def generate(rows: int, seed: int, fmt: str, sample: bool, out: Path) -> None:
    """Write a seeded synthetic FOCUS month: the same options always give the same bytes."""
    shape = SAMPLE_SHAPE if sample else Shape(rows=rows, seed=seed)
    write = write_csv if fmt == "csv" or sample else write_parquet
    write(shape, out)
    click.echo(f"wrote {shape.rows:,} lines to {out}")


@bench.command()
@ROWS
@CACHE
def collect(sizes: tuple[int, ...], cache_dir: Path | None) -> None:
    """Read the synthetic month with the focus-files collector only."""
    _report(run_benchmark("collect", sizes, cache_dir))


@bench.command()
@ROWS
@CACHE
def engine(sizes: tuple[int, ...], cache_dir: Path | None) -> None:
    """The full pipeline (collect, decide, allocate, stages, audit trail, every output) via Engine.run."""
    _report(run_benchmark("engine", sizes, cache_dir))


@bench.command("yaml")
@click.option("--repeat", type=click.IntRange(min=1), default=20, show_default=True, help="Timed runs per level.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def bench_yaml(repeat: int, output_format: str) -> None:
    """Rejection time and peak memory of the policy reader for alias bombs, levels 1-9."""
    from chargeback_engine.bench.yaml_bombs import measure_largest, run

    results = run(repeat)
    largest = measure_largest()
    if output_format == "json":
        click.echo(json.dumps({"bombs": [asdict(r) for r in results], "largest_file": asdict(largest)}, indent=2))
        return
    click.echo(f"{'level':>5} {'bytes':>6} {'naive nodes':>12} {'rejected':>8} {'median ms':>10} {'peak KiB':>9}")
    for r in results:
        click.echo(
            f"{r.level:>5} {r.size_bytes:>6} {r.expanded_nodes:>12,} {r.rejected!s:>8} "
            f"{r.median_ms:>10.3f} {r.peak_kib:>9.1f}"
        )
    click.echo(
        f"largest accepted file: {largest.size_bytes} bytes read in {largest.seconds:.2f} s "
        f"({largest.kib_per_second:.0f} KiB/s), peak {largest.peak_kib:.0f} KiB"
    )


def _report(measurements: list[Measurement]) -> None:
    click.echo(
        f"{'stage':<8} {'rows':>12} {'seconds':>8} {'cpu s':>8} {'rows/s':>12} {'peak RSS':>10} {'MB per 1M':>10}"
    )
    for m in measurements:
        click.echo(
            f"{m.stage:<8} {m.rows:>12,} {m.seconds:>8.2f} {m.cpu_seconds:>8.2f} {m.rows_per_second:>12,.0f} "
            f"{m.peak_rss_bytes / 2**20:>7,.0f} MB {m.peak_mb_per_million_rows:>10,.0f}"
        )
    for m in measurements:
        if m.steps:
            click.echo(f"\nsteps of {m.stage} at {m.rows:,} rows (peak RSS: the process's peak by the step's end)")
            click.echo(f"{'step':<28} {'seconds':>8} {'cpu s':>8} {'peak RSS':>10}")
            for s in m.steps:
                click.echo(f"{s.name:<28} {s.seconds:>8.2f} {s.cpu_seconds:>8.2f} {s.peak_rss_bytes / 2**20:>7,.0f} MB")
            click.echo(f"{'phase':<28} {'seconds':>8} {'cpu s':>8} {'peak RSS':>10} {'rows/s':>12}")
            for p in m.phases():
                rate = m.rows / p.seconds if p.seconds else float("inf")
                click.echo(
                    f"{p.name:<28} {p.seconds:>8.2f} {p.cpu_seconds:>8.2f} {p.peak_rss_bytes / 2**20:>7,.0f} MB "
                    f"{rate:>12,.0f}"
                )


@bench.command("spark")
@click.option(
    "--rows",
    "row_counts",
    type=click.IntRange(min=1000),
    multiple=True,
    default=(1_000_000,),
    show_default=True,
    help="Lines in the seeded synthetic month (repeatable).",
)
@click.option("--spark-master", default="local[2]", show_default=True, help="Spark master URL.")
@click.option("--driver-memory", default="8g", show_default=True, help="spark.driver.memory for the Spark run.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="/tmp/chargeback-bench",
    show_default=True,
    help="Where the month and both runs' outputs are written (the month is reused).",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def bench_spark(
    row_counts: tuple[int, ...], spark_master: str, driver_memory: str, workdir: str, output_format: str
) -> None:
    """DuckDB against Spark on the same seeded month and policy: rows/s and peak memory; fails
    unless both write byte-identical outputs."""
    from pathlib import Path

    from chargeback_engine.bench.spark_vs_duckdb import run

    results = [m for rows in row_counts for m in run(rows, Path(workdir), spark_master, driver_memory)]
    if output_format == "json":
        click.echo(json.dumps([asdict(m) for m in results], indent=2))
        return
    click.echo(f"{'engine':<8} {'lines':>12} {'ledger rows':>12} {'seconds':>9} {'lines/s':>10} {'peak MiB':>9}")
    for m in results:
        click.echo(
            f"{m.engine:<8} {m.rows:>12,} {m.ledger_rows:>12,} {m.seconds:>9.1f} {m.rows_per_second:>10,.0f} "
            f"{m.peak_mib:>9,.0f}"
        )
    click.echo("outputs identical: yes")
