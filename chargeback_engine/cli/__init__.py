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

from chargeback_engine.engine.runner import use_jemalloc_pool
from chargeback_engine.errors import ChargebackError
from chargeback_engine.plugins import PluginManager, Registry, build_registry, get_plugin_manager


@dataclass
class CliState:
    """What the global options decide; plugins load only when a command needs them."""

    allow: tuple[str, ...] | None = None
    block: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def plugin_manager(self) -> PluginManager:
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


class ChargebackGroup(click.Group):
    """Turns every ``ChargebackError`` into its message on stderr and exit status 1.

    Library errors already say what is wrong and where (``file:line:col: $.path: ...``), so
    a traceback would only bury that; ``-vv`` logs the traceback for whoever needs it.
    """

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except ChargebackError as exc:
            structlog.get_logger(__name__).debug("command.failed", exc_info=exc)
            message = str(exc)
            click.echo(message if getattr(exc, "diagnostics", None) else f"Error: {message}", err=True)
            ctx.exit(1)


@click.group(cls=ChargebackGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    use_jemalloc_pool()
    ctx.obj = CliState(allow=allow or None, block=block)


# Commands, one module per area; each command is one call into the library.
from chargeback_engine.cli.bench import bench  # noqa: E402
from chargeback_engine.cli.collect import collect_command  # noqa: E402
from chargeback_engine.cli.enrich import enrich_command  # noqa: E402
from chargeback_engine.cli.finance import COMMANDS as FINANCE_COMMANDS  # noqa: E402
from chargeback_engine.cli.plan import plan_command  # noqa: E402
from chargeback_engine.cli.plugins import plugins_command  # noqa: E402
from chargeback_engine.cli.policy import schema_command, validate_command  # noqa: E402
from chargeback_engine.cli.report import alerts, bench_anomalies, bench_forecast, budget, report  # noqa: E402
from chargeback_engine.cli.run import explain, run, test  # noqa: E402
from chargeback_engine.cli.tags import report_tags  # noqa: E402

for _command in (alerts, bench, budget, collect_command, enrich_command, explain, plan_command, plugins_command,
                 report, run, schema_command, test, validate_command, *FINANCE_COMMANDS):
    main.add_command(_command)
report.add_command(report_tags)
bench.add_command(bench_anomalies)
bench.add_command(bench_forecast)
