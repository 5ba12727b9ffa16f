"""``chargeback plan``: what a policy change does to the allocation, as a PR comment or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from chargeback_engine.methodology import methodology_diff
from chargeback_engine.policy.loader import load_policies
from chargeback_engine.policy_plan import plan

if TYPE_CHECKING:
    from chargeback_engine.cli import CliState


@click.command("plan")
@click.option(
    "--base",
    "base",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="The policy as it is (file or directory; repeatable), e.g. from the target branch.",
)
@click.option(
    "--head",
    "head",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="The policy as proposed (file or directory; repeatable).",
)
@click.option(
    "--input", "inputs", multiple=True, required=True, help="FOCUS CSV/Parquet file, directory or glob (repeatable)."
)
@click.option("--period", required=True, help="Billing period, YYYY-MM.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="markdown is ready to paste as a pull-request comment.",
)
@click.option(
    "--methodology",
    "with_methodology",
    is_flag=True,
    help="Also show how the written methodology (chargeback explain-policy) changes, as a diff.",
)
@click.pass_obj
def plan_command(
    state: CliState,
    base: tuple[str, ...],
    head: tuple[str, ...],
    inputs: tuple[str, ...],
    period: str,
    output_format: str,
    with_methodology: bool,
) -> None:
    """Allocate the inputs under BASE and HEAD; show before, after and delta per cost center and the rules that changed."""
    result = plan(list(base), list(head), list(inputs), period, plugins=state.plugin_manager)
    diff = (
        methodology_diff(load_policies(base, state.registry), load_policies(head, state.registry))
        if with_methodology
        else None
    )
    if output_format == "json":
        document = result.to_json()
        if diff is not None:
            document["methodology_diff"] = diff
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    click.echo(result.to_markdown(), nl=False)
    if diff is not None:
        click.echo("\n#### Methodology changes\n")
        click.echo(f"```diff\n{diff}```" if diff else "The written methodology is unchanged.")
