"""``chargeback bench``: generate synthetic months and measure the pipeline on them."""

from __future__ import annotations

from pathlib import Path

import click

from chargeback_engine.bench.runner import Measurement, default_cache_dir, run_benchmark
from chargeback_engine.bench.synthetic import DEFAULT_SEED, SAMPLE_SHAPE, Shape, write_csv, write_parquet

ROWS = click.option("--rows", "sizes", type=click.IntRange(min=1000), multiple=True, default=(1_000_000,),
                    show_default=True, help="Lines in the synthetic month (repeatable: one run per size).")
CACHE = click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=f"Where generated months are kept between runs [default: {default_cache_dir()}].")


@click.group()
def bench() -> None:
    """Benchmarks on seeded synthetic FOCUS months (rows/s and peak memory)."""


@bench.command()
@click.option("--rows", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--sample", is_flag=True, help="Write the bundled sample month (policies/data) instead; "
                                             "ignores --rows and --seed.")
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


def _report(measurements: list[Measurement]) -> None:
    click.echo(f"{'stage':<8} {'rows':>12} {'seconds':>8} {'cpu s':>8} {'rows/s':>12} {'peak RSS':>10} {'MB per 1M':>10}")
    for m in measurements:
        click.echo(f"{m.stage:<8} {m.rows:>12,} {m.seconds:>8.2f} {m.cpu_seconds:>8.2f} {m.rows_per_second:>12,.0f} "
                   f"{m.peak_rss_bytes / 2**20:>7,.0f} MB {m.peak_mb_per_million_rows:>10,.0f}")
