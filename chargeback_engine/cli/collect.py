"""``chargeback collect``: store each source's newest version for a period in the local cache."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from chargeback_engine.cli.output import echo_json, format_option
from chargeback_engine.pipeline import collect, parse_period
from chargeback_engine.policy.loader import load_policies

if TYPE_CHECKING:
    from chargeback_engine.cli import CliState


@click.command("collect")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="Policy file or directory (repeatable); its spec.sources are collected.",
)
@click.option("--period", required=True, help="Billing period, YYYY-MM, or 'current' for this month (UTC).")
@format_option
@click.pass_obj
def collect_command(state: CliState, policies: tuple[str, ...], period: str, output_format: str) -> None:
    """Collect PERIOD from every source; a version already stored is not written again."""
    month = parse_period(period)
    policy = load_policies(list(policies), state.registry).for_period(month)
    outcomes = collect(policy, state.registry, month)
    if output_format == "json":
        echo_json([{**asdict(o), "path": str(o.path)} for o in outcomes])
        return
    for outcome in outcomes:
        what = "stored" if outcome.stored else "unchanged"
        click.echo(f"{outcome.source_id}: {what} version {outcome.version} ({outcome.rows} rows) {outcome.path}")
