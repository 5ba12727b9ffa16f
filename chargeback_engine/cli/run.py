"""``chargeback run``, ``chargeback explain`` and ``chargeback test``: one API call each."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import click

from chargeback_engine.engine.explain import explain_cost_center, explain_record
from chargeback_engine.engine.policytest import run_policy_tests
from chargeback_engine.engine.runner import (
    DEFAULT_EXPORTERS,
    Engine,
    Progress,
    RunResult,
)
from chargeback_engine.enrich.exporter import EnrichmentExporter
from chargeback_engine.enrich.explain import explain_enrichment
from chargeback_engine.pipeline import month_to_date, parse_period

#: Steps of a run besides its shared stages and its exporters: collect, decide, allocate,
#: check, write manifest.
_FIXED_STEPS = 5


@contextmanager
def _progress(steps: int) -> Iterator[Progress | None]:
    """A progress bar on a terminal (stderr); nothing when piped or in CI."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=steps, label="allocating", file=sys.stderr) as bar:
        yield lambda step: (bar.update(1), setattr(bar, "label", step))  # type: ignore[func-returns-value]


def _print_summary(result: RunResult) -> None:
    rows = result.summary()
    width = max([len("cost center"), *(len(cc) for cc, _, _ in rows)])
    click.echo(f"{'cost center':<{width}}  currency  {'amount':>20}")
    for cost_center, currency, amount in rows:
        click.echo(f"{cost_center:<{width}}  {currency:<8}  {amount:>20f}")
    for currency, totals in result.totals().items():
        click.echo(f"{'total':<{width}}  {currency:<8}  {totals['allocated']:>20f}")
        if totals["carried"] != Decimal(0):
            click.echo(f"{'carried':<{width}}  {currency:<8}  {totals['carried']:>20f}  (from earlier schedules)")
        if totals["deferred"] != Decimal(0):
            click.echo(f"{'deferred':<{width}}  {currency:<8}  {totals['deferred']:>20f}  (amortized into later periods)")
    click.echo(f"run {result.run_id}: {result.input_rows} line(s), policy {result.policy.name}@{result.policy.version}")


@click.command("run")
@click.option("--policy", "policies", multiple=True, required=True, type=click.Path(exists=True),
              help="Policy file or directory (repeatable).")
@click.option("--input", "inputs", multiple=True,
              help="FOCUS CSV/Parquet file, directory or glob (repeatable); the policy's sources: are collected too.")
@click.option("--period", required=True,
              help="Billing period, YYYY-MM; 'current' runs this month to date from what chargeback collect stored.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for the outputs.")
@click.option("--carry", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="schedule.parquet of an earlier run: its parts for this period join the ledger (repeatable).")
@click.option("--engine", "engine_name", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Data plane that applies the decisions: in-process DuckDB, or Apache Spark.")
@click.option("--spark-master", help="Spark master URL for --engine spark (default: the active session, else local[2]).")
@click.option("--exporter", "exporters", multiple=True, metavar="NAME",
              help=f"Write only these outputs (repeatable): {', '.join(DEFAULT_EXPORTERS)} or a plugin's exporter. "
                   "Default: all five built-ins, and enrichment.parquet when the policy enriches tags. "
                   "manifest.json is always written.")
@click.pass_obj
def run(state, policies: tuple[str, ...], inputs: tuple[str, ...], period: str, out: str,  # type: ignore[no-untyped-def]
        carry: tuple[str, ...], engine_name: str, spark_master: str | None, exporters: tuple[str, ...]) -> None:
    """Allocate a period's cost data and write ledger, summary, FOCUS and manifest into OUT."""
    engine = Engine(list(policies), state.registry, plugin_manager=state.plugin_manager,
                    exporters=exporters or (*DEFAULT_EXPORTERS, EnrichmentExporter.name), engine=engine_name,
                    spark_master=spark_master)
    month = parse_period(period)
    stages = len(engine.policies.for_period(month).stages)
    with _progress(_FIXED_STEPS + stages + len(engine.exporters)) as progress:
        if period == "current":
            result = month_to_date(engine, month, list(inputs), out=out, progress=progress, carry=carry)
        else:
            result = engine.run(list(inputs), month, out=out, progress=progress, carry=carry)
    _print_summary(result)


@click.command("explain")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.option("--record", "record_id", help="A ledger record_id: every row of that source line.")
@click.option("--cost-center", "cost_center", help="A cost center: its total by rule, down to source lines.")
def explain(out: str, record_id: str | None, cost_center: str | None) -> None:
    """Explain a run's outputs, from cost-center totals down to rules and source lines."""
    if (record_id is None) == (cost_center is None):
        raise click.UsageError("give exactly one of --record or --cost-center")
    click.echo(explain_record(out, record_id) if record_id else explain_cost_center(out, cost_center or ""))
    if record_id and (enriched := explain_enrichment(out, record_id)):
        click.echo(enriched)


@click.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--fail-on-empty", is_flag=True, help="Fail when no test case ran.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def test(state, paths: tuple[str, ...], fail_on_empty: bool, output_format: str) -> None:  # type: ignore[no-untyped-def]
    """Run the *_test.yaml cases beside each policy: PASS or FAIL per case."""
    results = run_policy_tests(paths, state.registry)
    failed = [r for r in results if not r.passed]
    if output_format == "json":
        click.echo(json.dumps({"cases": [r.as_json() for r in results], "passed": len(results) - len(failed),
                               "failed": len(failed)}, indent=2))
    else:
        for r in results:
            click.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.test_file}: {r.name}")
            for message in r.messages:
                click.echo(f"      {message}")
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed or (fail_on_empty and not results):
        if not results:
            click.echo("no policy test cases found", err=True)
        sys.exit(1)
