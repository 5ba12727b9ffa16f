"""``chargeback validate`` and ``chargeback schema``: policy files from the command line."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from chargeback_engine.errors import Diagnostic
from chargeback_engine.methodology import FORMATS, methodology, render
from chargeback_engine.policy.loader import load_policies, validate
from chargeback_engine.policy.schema import assemble_schema, render_schema

if TYPE_CHECKING:
    from chargeback_engine.cli import CliState


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "table", "json", "github"]),
    default="text",
    show_default=True,
    help="text (table is the same) for people; github prints ::error annotations for pull requests.",
)
@click.pass_obj
def validate_command(state: CliState, paths: tuple[str, ...], output_format: str) -> None:
    """Check policy files (or folders of them); exit 0 if valid, 1 if not.

    Every error is reported at once, as file:line:column: $.path: message.
    """
    diagnostics = validate(paths, registry=state.registry)
    errors = sum(d.severity == "error" for d in diagnostics)
    if output_format == "json":
        click.echo(json.dumps({"valid": errors == 0, "diagnostics": [_as_dict(d) for d in diagnostics]}, indent=2))
    else:
        for diagnostic in diagnostics:
            click.echo(_github(diagnostic) if output_format == "github" else str(diagnostic))
    warnings = len(diagnostics) - errors
    click.echo(f"{_count(errors, 'error')}, {_count(warnings, 'warning')}", err=True)
    raise SystemExit(1 if errors else 0)


@click.command("explain-policy")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="markdown",
    show_default=True,
    help="markdown for a pull request or wiki; html to print and sign off.",
)
@click.pass_obj
def explain_policy_command(state: CliState, paths: tuple[str, ...], output_format: str) -> None:
    """Write the allocation methodology in plain language from POLICY: rules in order, splits with worked
    examples, shared-cost stages, the rounding rule, version and hash."""
    click.echo(render(methodology(load_policies(paths, state.registry)), output_format), nl=False)


@click.command("schema")
@click.pass_obj
def schema_command(state: CliState) -> None:
    """Print the policy JSON Schema, assembled with every loaded plugin's parameters."""
    click.echo(render_schema(assemble_schema(state.registry)), nl=False)


def _as_dict(d: Diagnostic) -> dict[str, object]:
    return {
        "file": d.file,
        "line": d.line,
        "column": d.column,
        "path": d.path,
        "message": d.message,
        "severity": d.severity,
    }


def _github(d: Diagnostic) -> str:
    """A GitHub Actions workflow command; its data and properties have their own escapes."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    return f"::{d.severity} file={prop(d.file)},line={d.line},col={d.column}::{data(d.path)}: {data(d.message)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
