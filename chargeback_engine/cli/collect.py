"""``chargeback collect``: store each source's newest version for a period in the local cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

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
@click.pass_obj
def collect_command(state: CliState, policies: tuple[str, ...], period: str) -> None:
    """Collect PERIOD from every source; a version already stored is not written again."""
    month = parse_period(period)
    policy = load_policies(list(policies), state.registry).for_period(month)
    for outcome in collect(policy, state.registry, month):
        what = "stored" if outcome.stored else "unchanged"
        click.echo(f"{outcome.source_id}: {what} version {outcome.version} ({outcome.rows} rows) {outcome.path}")
