"""The ``chargeback`` command: a thin layer over the public API.

Each command module holds one command group's click functions and calls one library
function per command; this module only wires them together and configures logging,
which is the application's job and never the library's.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from functools import cached_property

import click
import structlog

from chargeback_engine.plugins import Registry, build_registry, get_plugin_manager


@dataclass
class CliState:
    """What the global options decide; plugins load only when a command needs them."""

    allow: tuple[str, ...] | None = None
    block: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def plugin_manager(self):  # type: ignore[no-untyped-def]
        return get_plugin_manager(allow=self.allow, block=self.block)

    @cached_property
    def registry(self) -> Registry:
        return build_registry(self.plugin_manager)


def configure_logging(log_format: str, verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    renderer = structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chargeback-engine")
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True,
              help="How log lines on stderr are rendered.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--allow-plugin", "allow", multiple=True, metavar="NAME",
              help="Load only these plugins (repeatable). Also CHARGEBACK_PLUGINS_ALLOW.")
@click.option("--block-plugin", "block", multiple=True, metavar="NAME",
              help="Never load these plugins (repeatable). Also CHARGEBACK_PLUGINS_BLOCK.")
@click.pass_context
def main(ctx: click.Context, log_format: str, verbose: int, allow: tuple[str, ...], block: tuple[str, ...]) -> None:
    """Allocate cloud spend to cost centers with versioned, tested policies."""
    configure_logging(log_format, verbose)
    ctx.obj = CliState(allow=allow or None, block=block)


from chargeback_engine.cli.report import alerts, budget, report  # noqa: E402  (commands register last)

main.add_command(report)
main.add_command(budget)
main.add_command(alerts)
