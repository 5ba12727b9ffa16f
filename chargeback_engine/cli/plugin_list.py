"""``chargeback plugins``: answers a plugin author's first question, "did my install work?"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from chargeback_engine.cli.output import echo_json
from chargeback_engine.plugins import list_plugins

if TYPE_CHECKING:
    from chargeback_engine.cli import CliState


@click.command("plugins")
@click.option("--all", "include_builtin", is_flag=True, help="Include the built-in plugins of chargeback-engine.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "text"]),
    default="table",
    show_default=True,
    help="table (text is the same) for people; json for programs, the shape of schemas/cli/plugins.schema.json.",
)
@click.pass_obj
def plugins_command(state: CliState, include_builtin: bool, output_format: str) -> None:
    """List installed plugins, their distributions and what they register."""
    infos = list_plugins(state.plugin_manager, include_builtin=include_builtin)
    if output_format == "json":
        echo_json([info.to_json() for info in infos])
        return
    if not infos:
        click.echo("No plugins installed." if include_builtin else "No third-party plugins (--all shows built-ins).")
    for info in infos:
        origin = info.origin
        installed = f"{origin.distribution} {origin.version}" if origin.distribution else "registered in code"
        click.echo(f"{info.name} ({installed}{', built-in' if origin.builtin else ''})")
        for kind, names in info.registers.items():
            if names:
                click.echo(f"  {kind}: {', '.join(names)}")
        click.echo(f"  hooks: {', '.join(info.hooks)}")
