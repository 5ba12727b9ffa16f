"""How commands print results: ``--format table|json``, rich tables on a terminal, plain text elsewhere.

``table`` is for people: amounts through :mod:`chargeback_engine.display`, colour and box
tables when stdout is a terminal (``NO_COLOR`` turns the colour off), plain aligned
columns when it is a pipe or a file, so scripts and tests see stable text. ``json`` is for
programs: exact amounts as strings, the shapes in ``schemas/cli/*.schema.json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")


def format_option(function: F) -> F:
    """``--format table|json``; a command reads it as ``output_format``."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people; json for programs (exact amounts, documented shape).",
    )(function)


def _plain(value: Any) -> Any:
    """Decimals as fixed-point strings at their own scale (never ``1E+3``), dates in ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    raise TypeError(f"{type(value).__name__} is not JSON")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=_plain))


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool = False  # right-aligned
    style: str | None = None  # a rich style, on a terminal only


def rich_terminal() -> bool:
    """Rich output only where a person reads it: stdout a terminal and TERM not ``dumb``."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def echo_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    footer: Sequence[Sequence[str]] = (),
) -> None:
    """Rows, then footer rows (totals) set apart; rich on a terminal, plain aligned text otherwise."""
    if rich_terminal():
        _rich_table(columns, rows, title, footer)
        return
    widths = [max([len(c.header), *(len(r[i]) for r in (*rows, *footer))]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if c.numeric else cell.ljust(w) for cell, w, c in zip(cells, widths, columns)
        ).rstrip()

    if title:
        click.echo(title)
    click.echo(line([c.header for c in columns]))
    for row in (*rows, *footer):
        click.echo(line(row))


def _rich_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None, footer: Sequence[Sequence[str]]
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold cyan", border_style="dim")
    for c in columns:
        table.add_column(c.header, justify="right" if c.numeric else "left", style=c.style)
    for row in rows:
        table.add_row(*row)
    if footer and rows:
        table.add_section()
    for row in footer:
        table.add_row(*row, style="bold")
    Console(highlight=False).print(table)


def echo_status(text: str, *, style: str) -> None:
    """A one-line outcome (``closed``, ``audit chain intact``), coloured on a terminal."""
    if rich_terminal():
        from rich.console import Console

        Console(highlight=False).print(text, style=style, markup=False)
    else:
        click.echo(text)
