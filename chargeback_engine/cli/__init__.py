"""The ``chargeback`` command: a thin layer over the public API.

Each command module holds one command group's click functions and calls one library
function per command; this module only wires them together and configures logging,
which is the application's job and never the library's.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import click
import duckdb
import pyarrow as pa
import structlog

from chargeback_engine.cli.defaults import find_config, load_defaults
from chargeback_engine.engine.memory import use_jemalloc_pool
from chargeback_engine.errors import ChargebackError
from chargeback_engine.logs import get_logger
from chargeback_engine.plugins import PluginManager, Registry, build_registry, get_plugin_manager
from chargeback_engine.redact import redact, redact_event_dict


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


def _shown(record: logging.LogRecord) -> bool:
    """Every structlog event at the chosen level; other libraries' records from WARNING up only,
    as Python shows them unconfigured (botocore prints signed requests at DEBUG)."""
    return record.levelno >= logging.WARNING or hasattr(record, "_logger")


def configure_logging(log_format: str, verbosity: int) -> Callable[[], None]:
    """Render every log record on stderr for one invocation; returns what puts logging back."""
    level = logging.WARNING - 10 * min(verbosity, 2)
    renderer = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(  # for plugins that call structlog.get_logger() rather than chargeback_engine.logs
        processors=[structlog.stdlib.filter_by_level, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_shown)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                redact_event_dict,  # last before rendering: no credential reaches a log line
                renderer,
            ]
        )
    )
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def put_back() -> None:
        root.removeHandler(handler)
        root.setLevel(previous_level)

    return put_back


class ChargebackGroup(click.Group):
    """No traceback ever reaches a user: every failure becomes one sentence on stderr.

    Library errors already say what is wrong and where (``file:line:col: $.path: ...``) and
    exit 1. Failures of the environment (a full disk, a ``--db`` that is not a database, a
    damaged output file) are named with what to do, also exit 1. Anything else is a bug:
    exit 2 with the error's type and a request to report it. Every message is redacted;
    ``-vv`` logs the traceback for whoever needs it.
    The top-level context takes its defaults from ``chargeback.toml`` (:mod:`.defaults`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Command name -> ``module:attribute``. A command's module is imported when the command
        #: runs, not at start-up: ``chargeback run`` then never imports the finance stack
        #: (SQLAlchemy) or the reports' (pandas), about half of the CLI's start-up.
        self.lazy_commands: dict[str, str] = {}
        self.lazy_subcommands: dict[str, tuple[str, ...]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            command = _attribute(self.lazy_commands[cmd_name])
            assert isinstance(command, click.Command)
            for sub in self.lazy_subcommands.get(cmd_name, ()):
                assert isinstance(command, click.Group)
                command.add_command(_attribute(sub))
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        if parent is None and "default_map" not in extra:
            try:
                if find_config(Path.cwd()) is not None:  # its sections are checked against every command
                    for name in self.list_commands(click.Context(self)):
                        self.get_command(click.Context(self), name)
                extra["default_map"] = load_defaults(self, Path.cwd())
            except ChargebackError as exc:
                raise click.ClickException(str(exc)) from exc
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001  the one place where every failure is turned into a sentence
            get_logger(__name__).debug("command.failed", exc_info=exc)
            message, code = failure_message(exc)
            click.echo(redact(message), err=True)
            ctx.exit(code)


def _attribute(reference: str) -> Any:
    """``module:attribute``, imported."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def failure_message(exc: Exception) -> tuple[str, int]:
    """The line a user sees for ``exc``, and the exit status."""
    from sqlalchemy.exc import DBAPIError  # only on failure: most commands never load SQLAlchemy

    if isinstance(exc, ChargebackError):
        return (str(exc) if getattr(exc, "diagnostics", None) else f"Error: {exc}"), 1
    if isinstance(exc, DBAPIError):
        reason = (str(exc.orig).strip() or type(exc.orig).__name__).splitlines()[0]
        if "full" in reason or "disk I/O" in reason:
            hint = "free disk space (or check the disk) and run the command again; nothing of it was committed"
        elif "not a database" in reason or "file is encrypted" in reason:
            hint = "--db (or CHARGEBACK_DB) must name a chargeback SQLite file or a PostgreSQL URL"
        else:
            hint = "check --db (or CHARGEBACK_DB) and that the database is reachable"
        return f"Error: the cost database failed: {reason}; {hint}", 1
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        hints = {
            errno.ENOSPC: "; free disk space and run the command again",
            errno.EACCES: "; check the permissions",
            errno.EROFS: "; the file system is read-only",
        }
        return f"Error: {where}{exc.strerror or exc}{hints.get(exc.errno or 0, '')}", 1
    if isinstance(exc, duckdb.Error | pa.ArrowException):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"Error: {first}", 1
    return (
        f"Error: unexpected {type(exc).__name__}: {str(exc)[:300]}; this is a bug, please report it "
        "(run with -vv for the traceback)"
    ), 2


@click.group(cls=ChargebackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chargeback-engine")
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="How log lines on stderr are rendered.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--allow-plugin",
    "allow",
    multiple=True,
    metavar="NAME",
    help="Load only these plugins (repeatable). Also CHARGEBACK_PLUGINS_ALLOW.",
)
@click.option(
    "--block-plugin",
    "block",
    multiple=True,
    metavar="NAME",
    help="Never load these plugins (repeatable). Also CHARGEBACK_PLUGINS_BLOCK.",
)
@click.pass_context
def main(ctx: click.Context, log_format: str, verbose: int, allow: tuple[str, ...], block: tuple[str, ...]) -> None:
    """Allocate cloud spend to cost centers with versioned, tested policies."""
    ctx.call_on_close(configure_logging(log_format, verbose))
    use_jemalloc_pool()
    ctx.obj = CliState(allow=allow or None, block=block)


# Commands, one module per area; each command is one call into the library.
main.lazy_commands.update(
    {
        "alerts": "chargeback_engine.cli.report:alerts",
        "audit": "chargeback_engine.cli.finance:audit",
        "bench": "chargeback_engine.cli.bench:bench",
        "budget": "chargeback_engine.cli.report:budget",
        "collect": "chargeback_engine.cli.collect:collect_command",
        "dispute": "chargeback_engine.cli.finance:dispute",
        "enrich": "chargeback_engine.cli.enrich:enrich_command",
        "explain": "chargeback_engine.cli.run:explain",
        "explain-policy": "chargeback_engine.cli.policy:explain_policy_command",
        "invoice": "chargeback_engine.cli.finance:invoice",
        "journal": "chargeback_engine.cli.finance:journal",
        "ledger": "chargeback_engine.cli.finance:ledger",
        "period": "chargeback_engine.cli.finance:period",
        "plan": "chargeback_engine.cli.plan:plan_command",
        "plugins": "chargeback_engine.cli.plugin_list:plugins_command",
        "report": "chargeback_engine.cli.report:report",
        "run": "chargeback_engine.cli.run:run",
        "schema": "chargeback_engine.cli.policy:schema_command",
        "test": "chargeback_engine.cli.run:test",
        "validate": "chargeback_engine.cli.policy:validate_command",
    }
)
#: Subcommands that live in another area's module, added to their group when it loads.
main.lazy_subcommands.update(
    {
        "report": ("chargeback_engine.cli.tags:report_tags",),
        "bench": ("chargeback_engine.cli.report:bench_anomalies", "chargeback_engine.cli.report:bench_forecast"),
    }
)
