"""``chargeback enrich``: take fresh inventory snapshots for a period.

A run reads the newest stored snapshot of its period, so reruns stay byte-identical; this is
how to ask for a fresh one (the next run of the period uses it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from chargeback_engine.cli.output import echo_json, format_option
from chargeback_engine.enrich.apply import snapshots_for
from chargeback_engine.pipeline import parse_period
from chargeback_engine.policy.loader import load_policies

if TYPE_CHECKING:
    from chargeback_engine.cli import CliState


@click.command("enrich")
@click.option(
    "--policy",
    "policies",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="Policy file or directory (repeatable); its spec.enrich names the sources.",
)
@click.option("--period", required=True, help="Billing period, YYYY-MM, or 'current' for this month (UTC).")
@format_option
@click.pass_obj
def enrich_command(state: CliState, policies: tuple[str, ...], period: str, output_format: str) -> None:
    """Read every spec.enrich source now and store the snapshots for PERIOD."""
    month = parse_period(period)
    policy = load_policies(list(policies), state.registry).for_period(month)
    snapshots = snapshots_for(policy, state.registry, month, refresh=True)
    if output_format == "json":
        echo_json(
            [
                {
                    "source_id": s.source_id,
                    "enricher": s.enricher,
                    "taken_at": s.taken_at,
                    "tags": s.table.num_rows,
                    "path": str(s.path),
                }
                for s in snapshots
            ]
        )
        return
    if not snapshots:
        click.echo(f"policy {policy.name} has no spec.enrich sources")
    for snapshot in snapshots:
        click.echo(
            f"{snapshot.source_id} ({snapshot.enricher}): {snapshot.table.num_rows} tag(s) "
            f"at {snapshot.stamp} -> {snapshot.path}"
        )
