"""``chargeback bench``: measured performance figures (rows/s, time, peak memory)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click


@click.group("bench")
def bench() -> None:
    """Run a benchmark and print its measurements."""


@bench.command("yaml")
@click.option("--repeat", type=click.IntRange(min=1), default=20, show_default=True, help="Timed runs per level.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def bench_yaml(repeat: int, output_format: str) -> None:
    """Rejection time and peak memory of the policy reader for alias bombs, levels 1-9."""
    from chargeback_engine.bench.yaml_bombs import run

    results = run(repeat)
    if output_format == "json":
        click.echo(json.dumps([asdict(r) for r in results], indent=2))
        return
    click.echo(f"{'level':>5} {'bytes':>6} {'naive nodes':>12} {'rejected':>8} {'median ms':>10} {'peak KiB':>9}")
    for r in results:
        click.echo(f"{r.level:>5} {r.size_bytes:>6} {r.expanded_nodes:>12,} {str(r.rejected):>8} "
                   f"{r.median_ms:>10.3f} {r.peak_kib:>9.1f}")


@bench.command("spark")
@click.option("--rows", "row_counts", type=click.IntRange(min=1000), multiple=True, default=(1_000_000,),
              show_default=True, help="Lines in the seeded synthetic month (repeatable).")
@click.option("--spark-master", default="local[2]", show_default=True, help="Spark master URL.")
@click.option("--driver-memory", default="8g", show_default=True, help="spark.driver.memory for the Spark run.")
@click.option("--workdir", type=click.Path(file_okay=False), default="/tmp/chargeback-bench", show_default=True,
              help="Where the month and both runs' outputs are written (the month is reused).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def bench_spark(row_counts: tuple[int, ...], spark_master: str, driver_memory: str, workdir: str,
                output_format: str) -> None:
    """DuckDB against Spark on the same seeded month and policy: rows/s and peak memory; fails
    unless both write byte-identical outputs."""
    from pathlib import Path

    from chargeback_engine.bench.spark import run

    results = [m for rows in row_counts for m in run(rows, Path(workdir), spark_master, driver_memory)]
    if output_format == "json":
        click.echo(json.dumps([asdict(m) for m in results], indent=2))
        return
    click.echo(f"{'engine':<8} {'lines':>12} {'ledger rows':>12} {'seconds':>9} {'lines/s':>10} {'peak MiB':>9}")
    for m in results:
        click.echo(f"{m.engine:<8} {m.rows:>12,} {m.ledger_rows:>12,} {m.seconds:>9.1f} {m.rows_per_second:>10,.0f} "
                   f"{m.peak_mib:>9,.0f}")
    click.echo("outputs identical: yes")
