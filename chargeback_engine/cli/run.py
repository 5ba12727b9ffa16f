"""``chargeback run``, ``chargeback explain`` and ``chargeback test``: one API call each."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from chargeback_engine import display
from chargeback_engine.cli.output import Column, echo_json, echo_table, format_option
from chargeback_engine.collect import listening
from chargeback_engine.engine.dataplane import DataPlane
from chargeback_engine.engine.explain import explain_cost_center, explain_record
from chargeback_engine.engine.outputs import check_writable
from chargeback_engine.engine.policytest import run_policy_tests
from chargeback_engine.engine.result import RunResult, describe
from chargeback_engine.engine.runner import DEFAULT_EXPORTERS, Engine, Progress
from chargeback_engine.enrich.explain_enrichment import explain_enrichment
from chargeback_engine.pipeline import month_to_date, parse_period
from chargeback_engine.policy.loader import load_policies

if TYPE_CHECKING:
    from chargeback_engine.cli import CliState

#: Steps of a run besides its shared stages and its exporters: collect, decide, allocate,
#: check, write manifest.
_FIXED_STEPS = 5


@contextmanager
def _progress(steps: int) -> Iterator[Progress | None]:
    """A progress bar on a terminal (stderr), moved by each step and by every page or file a
    collector reports (:func:`chargeback_engine.plugin.report_progress`); nothing when piped or in CI."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=steps, label="allocating", file=sys.stderr) as bar:

        def collecting(what: str, done: int, total: int | None) -> None:
            bar.label = f"collect: {what} {done:,}" + (f"/{total:,}" if total else " page(s)")
            bar.render_progress()

        def advance(step: str) -> None:
            bar.update(1)
            bar.label = step

        with listening(collecting):
            yield advance


def _print_summary(result: RunResult) -> None:
    names = {cc.id: cc.name for cc in result.policy.cost_centers}
    rows = [
        (display.cost_center(cc, names), display.money(amount, currency)) for cc, currency, amount in result.summary()
    ]
    footer = []
    for currency, totals in result.totals().items():
        footer.append(("total", display.money(totals["allocated"], currency)))
        if totals["carried"] != Decimal(0):
            footer.append(("carried (from earlier schedules)", display.money(totals["carried"], currency)))
        if totals["deferred"] != Decimal(0):
            footer.append(("deferred (amortized into later periods)", display.money(totals["deferred"], currency)))
    echo_table([Column("cost center"), Column("amount", numeric=True)], rows, footer=footer)
    click.echo(
        f"run {result.run_id}: {result.input_rows:,} line(s), policy {result.policy.name}@{result.policy.version}"
    )


def _summary_json(result: RunResult) -> dict[str, object]:
    """The manifest's content plus the amount of every cost center, exact."""
    names = {cc.id: cc.name for cc in result.policy.cost_centers}
    return {
        **describe(result),
        "cost_centers": [
            {"cost_center": cc, "name": names.get(cc), "currency": currency, "amount": amount}
            for cc, currency, amount in result.summary()
        ],
    }


@click.command("run")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="Policy file or directory (repeatable).",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help="FOCUS CSV/Parquet file, directory or glob (repeatable); the policy's sources: are collected too.",
)
@click.option(
    "--period",
    required=True,
    help="Billing period, YYYY-MM; 'current' runs this month to date from what chargeback collect stored.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for the outputs.")
@click.option(
    "--carry",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="schedule.parquet of an earlier run: its parts for this period join the ledger (repeatable).",
)
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Data plane that applies the decisions: in-process DuckDB, or Apache Spark.",
)
@click.option(
    "--spark-master", help="Spark master URL for --engine spark (default: the active session, else local[2])."
)
@click.option(
    "--export",
    "exports",
    multiple=True,
    metavar="NAME",
    help="Also write this exporter's output (repeatable): allocations-csv, focus-allocated or a plugin's "
    f"exporter. Always written: {', '.join(DEFAULT_EXPORTERS)} (schedule when there is one), "
    "enrichment when the policy enriches tags, the policy's spec.exports, and manifest.json.",
)
@format_option
@click.pass_obj
def run(
    state: CliState,
    policies: tuple[str, ...],
    inputs: tuple[str, ...],
    period: str,
    out: str,
    carry: tuple[str, ...],
    engine_name: str,
    spark_master: str | None,
    exports: tuple[str, ...],
    output_format: str,
) -> None:
    """Allocate a period's cost data and write ledger, decisions, summary and manifest into OUT."""
    check_writable(out)
    plane: str | Callable[[], DataPlane] = engine_name
    if engine_name == "spark" and spark_master:
        from chargeback_engine.engine.spark import SparkPlane  # pyspark is optional

        plane = partial(SparkPlane, master=spark_master)
    engine = Engine(list(policies), state.plugin_manager, plane=plane)
    month = parse_period(period)
    policy = engine.policies.for_period(month)
    with _progress(_FIXED_STEPS + len(policy.stages) + len(engine.exports(policy, exports))) as progress:
        if period == "current":
            result = month_to_date(engine, month, list(inputs), out=out, progress=progress, carry=carry, export=exports)
        else:
            result = engine.run(list(inputs), month, out=out, progress=progress, carry=carry, export=exports)
    if output_format == "json":
        echo_json(_summary_json(result))
    else:
        _print_summary(result)


@click.command("explain")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.option("--record", "record_id", help="A ledger record_id: every row of that source line.")
@click.option("--cost-center", "cost_center", help="A cost center: its total by rule, down to source lines.")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=click.Path(exists=True),
    help="The run's policy (repeatable): cost-center names beside their ids.",
)
@format_option
@click.pass_obj
def explain(
    state: CliState,
    out: str,
    record_id: str | None,
    cost_center: str | None,
    policies: tuple[str, ...],
    output_format: str,
) -> None:
    """Explain a run's outputs, from cost-center totals down to rules and source lines."""
    if (record_id is None) == (cost_center is None):
        raise click.UsageError("give exactly one of --record or --cost-center")
    found = explain_record(out, record_id) if record_id else explain_cost_center(out, cost_center or "")
    if output_format == "json":
        echo_json(found)
        return
    names = (
        {cc.id: cc.name for p in load_policies(policies, state.registry).policies for cc in p.cost_centers}
        if policies
        else {}
    )
    click.echo(_record_text(found, names) if record_id else _cost_center_text(found, names))
    if record_id and (enriched := explain_enrichment(out, record_id)):
        click.echo(enriched)


def _record_text(found: dict[str, Any], names: dict[str, str]) -> str:
    lines = [
        f"record {found['record_id']}: {found['source_id']} row {found['source_row']} "
        f"(service {found['service'] or '-'}, resource {found['resource'] or '-'})"
    ]
    for row in found["rows"]:
        moved = f" from {row['from_cost_center']}" if row["from_cost_center"] not in (None, row["cost_center"]) else ""
        shares = row["shares"] or {}
        total = sum((Decimal(w) for w in shares.values()), Decimal(0))
        split = ", ".join(f"{cc} {display.share(Decimal(w) / total)}" for cc, w in shares.items()) if total else "-"
        lines.append(
            f"  stage {row['stage']}  {display.cost_center(row['cost_center'], names)}  "
            f"{display.money(row['amount'], row['currency'])}  {row['period']}  {row['category']}{moved}"
        )
        lines.append(
            f"    decision {row['decision_id']}: rule {row['rule']} at {row['rule_location'] or '-'}, "
            f"method {row['method']}, shares {split}"
        )
        lines.append(f"    reason: {row['reason']}")
    return "\n".join(lines)


def _cost_center_text(found: dict[str, Any], names: dict[str, str]) -> str:
    totals = ", ".join(display.money(t["amount"], t["currency"]) for t in found["totals"])
    lines = [f"cost center {display.cost_center(found['cost_center'], names)}: {totals}"]
    for rule in found["rules"]:
        lines.append(
            f"  rule {rule['rule']} ({rule['rule_location'] or '-'}), stage {rule['stage']}: "
            f"{display.money(rule['amount'], rule['currency'])} from {rule['lines']:,} line(s)"
        )
        lines.extend(f"    reason: {reason}" for reason in rule["reasons"])
        for line in rule["top_lines"]:
            lines.append(
                f"    {line['source_id']} row {line['source_row']}: "
                f"{display.money(line['amount'], rule['currency'])} "
                f"(record {line['record_id']}, decision {line['decision_id']})"
            )
    return "\n".join(lines)


@click.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--fail-on-empty", is_flag=True, help="Fail when no test case ran.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "table", "json"]),
    default="text",
    show_default=True,
    help="text (table is the same) for people; json for programs.",
)
@click.pass_obj
def test(state: CliState, paths: tuple[str, ...], fail_on_empty: bool, output_format: str) -> None:
    """Run the *_test.yaml cases beside each policy: PASS or FAIL per case."""
    results = run_policy_tests(paths, state.plugin_manager)
    failed = [r for r in results if not r.passed]
    if output_format == "json":
        click.echo(
            json.dumps(
                {"cases": [r.as_json() for r in results], "passed": len(results) - len(failed), "failed": len(failed)},
                indent=2,
            )
        )
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
