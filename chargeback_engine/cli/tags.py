"""``chargeback report tags``: tag compliance by count and spend, with its trend and the gaps to chase."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chargeback_engine.compliance import RENDERERS, as_alert, tag_report
from chargeback_engine.errors import ChargebackError
from chargeback_engine.insight.alerts import read_channels
from chargeback_engine.policy.loader import load_policies
from chargeback_engine.redact import redact

if TYPE_CHECKING:
    from chargeback_engine.cli import CliState


@click.command("tags")
@click.option(
    "--run",
    "runs",
    multiple=True,
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Output directory of a run (repeatable, oldest first: the trend); the last one is detailed.",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="Policy file or directory (repeatable); its spec.tags.required is what must be there.",
)
@click.option(
    "--top", default=10, show_default=True, type=click.IntRange(1, 1000), help="How many untagged resources to list."
)
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="table", show_default=True)
@click.option(
    "--notify",
    "notifiers",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML: {notifiers: [{type: webhook, url: ...}]}; also send the report (Markdown) through them.",
)
@click.pass_obj
def report_tags(
    state: CliState,
    runs: tuple[str, ...],
    policies: tuple[str, ...],
    top: int,
    fmt: str,
    notifiers: Path | None,
) -> None:
    """Which lines carry every required tag, per account and cost center, and who to ask about the rest."""
    report = tag_report(list(runs), load_policies(list(policies), state.registry), top=top)
    click.echo(RENDERERS[fmt](report), nl=False)
    if notifiers is not None:
        targets = read_channels(notifiers, state.registry.notifiers)
        alert = as_alert(report)
        failed = False
        for channel in targets:
            try:
                channel.send(alert)
            except ChargebackError as exc:  # a refused delivery or a broken notifier: say which, try the rest
                click.echo(redact(f"not sent on {channel.id}: {exc}"), err=True)
                failed = True
            else:
                click.echo(f"sent to {channel.id}", err=True)
        if failed:
            sys.exit(1)
