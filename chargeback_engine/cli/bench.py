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
    from chargeback_engine.bench.yaml_bombs import measure_largest, run

    results = run(repeat)
    largest = measure_largest()
    if output_format == "json":
        click.echo(json.dumps({"bombs": [asdict(r) for r in results], "largest_file": asdict(largest)}, indent=2))
        return
    click.echo(f"{'level':>5} {'bytes':>6} {'naive nodes':>12} {'rejected':>8} {'median ms':>10} {'peak KiB':>9}")
    for r in results:
        click.echo(f"{r.level:>5} {r.size_bytes:>6} {r.expanded_nodes:>12,} {str(r.rejected):>8} "
                   f"{r.median_ms:>10.3f} {r.peak_kib:>9.1f}")
    click.echo(f"largest accepted file: {largest.size_bytes} bytes read in {largest.seconds:.2f} s "
               f"({largest.kib_per_second:.0f} KiB/s), peak {largest.peak_kib:.0f} KiB")
