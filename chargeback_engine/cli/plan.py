"""``chargeback plan``: what a policy change does to the allocation, as a PR comment or JSON."""

from __future__ import annotations

import json

import click

from chargeback_engine.plan import plan


@click.command("plan")
@click.option("--base", "base", multiple=True, required=True, type=click.Path(exists=True),
              help="The policy as it is (file or directory; repeatable), e.g. from the target branch.")
@click.option("--head", "head", multiple=True, required=True, type=click.Path(exists=True),
              help="The policy as proposed (file or directory; repeatable).")
@click.option("--input", "inputs", multiple=True, required=True,
              help="FOCUS CSV/Parquet file, directory or glob (repeatable).")
@click.option("--period", required=True, help="Billing period, YYYY-MM.")
@click.option("--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True, help="markdown is ready to paste as a pull-request comment.")
@click.pass_obj
def plan_command(state, base: tuple[str, ...], head: tuple[str, ...], inputs: tuple[str, ...],  # type: ignore[no-untyped-def]
                 period: str, output_format: str) -> None:
    """Allocate the inputs under BASE and HEAD; show before, after and delta per cost center and the rules that changed."""
    result = plan(list(base), list(head), list(inputs), period, registry=state.registry)
    if output_format == "json":
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(result.to_markdown(), nl=False)
