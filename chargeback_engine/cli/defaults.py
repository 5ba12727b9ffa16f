"""Defaults for the command line from ``chargeback.toml``, found from the working directory upwards.

Precedence, strongest first: the command line, environment variables (``CHARGEBACK_DB``
and the others each option names in its help), ``chargeback.toml``, the built-in default.
Click gives exactly this order when the file becomes the context's ``default_map``, which
it consults after an option's environment variable and before its default.

Keys are option names without the dashes. Top-level keys apply to every command that has
the option (``db``, ``format``); a table names a command (``[run]``, ``[period.status]``)
and applies to it alone, where a key that is not one of its options is an error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from chargeback_engine.errors import InputError

CONFIG_NAME = "chargeback.toml"

#: The ``--db`` option of every command that opens the cost database.
db_option = click.option(
    "--db",
    "db",
    default=None,
    metavar="URL",
    envvar="CHARGEBACK_DB",
    help="Cost database URL. Also CHARGEBACK_DB; default sqlite:///chargeback.db.",
)


def find_config(start: Path) -> Path | None:
    """The nearest ``chargeback.toml`` in ``start`` or a directory above it."""
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load_defaults(command: click.Command, start: Path) -> dict[str, Any]:
    """The ``default_map`` for ``command`` from the nearest config file; empty when there is none."""
    path = find_config(start)
    if path is None:
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: {exc}") from exc
    return _defaults(command, document, {}, path, "")


def _defaults(
    command: click.Command, table: Mapping[str, Any], inherited: Mapping[str, Any], path: Path, where: str
) -> dict[str, Any]:
    own = {k: v for k, v in table.items() if not isinstance(v, dict)}
    by_option = {opt[2:]: param.name for param in command.params for opt in param.opts if opt.startswith("--")}
    if where:  # a command's own table: every key must be one of its options
        unknown = sorted(k for k in own if k not in by_option)
        if unknown:
            raise InputError(
                f"{path}: [{where}] has no option --{unknown[0]} "
                f"(options: {', '.join('--' + o for o in sorted(by_option))})"
            )
    values = {**inherited, **own}
    multiple = {param.name for param in command.params if getattr(param, "multiple", False)}
    result: dict[str, Any] = {}
    for key, value in values.items():
        if key in by_option:
            name = by_option[key]
            result[name] = [value] if name in multiple and not isinstance(value, list) else value
    if isinstance(command, click.Group):
        for name, value in table.items():
            if isinstance(value, dict) and name not in command.commands:
                raise InputError(f"{path}: [{f'{where}.' if where else ''}{name}] is not a command")
        for name, sub in command.commands.items():
            section = table.get(name, {})
            result[name] = _defaults(sub, section, values, path, f"{where}.{name}" if where else name)
    return result
