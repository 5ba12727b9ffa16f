"""The one CSV writer: every CSV the product writes goes through here.

Two guards, both needed because a CSV is read by spreadsheets as well as by programs:

- **Row splits.** A field holding CR or LF (a bare CR included: Python's ``csv`` module
  quotes only the characters of its own line terminator) is quoted, so no reader starts a
  new row inside it.
- **Formula injection** (OWASP "CSV Injection"). A text cell whose first character, after
  any leading whitespace, is ``=``, ``+``, ``-``, ``@``, tab, CR, LF, NUL or a full-width
  ``＝ ＋ － ＠`` gets a leading ``'``, which spreadsheets show but never evaluate. A cell
  that is a plain number (``-12.50``, ``1,234``, ``-3.5%``; no ``+``) is left as it is: a number is
  never a formula, and finance files must keep their signed amounts.

The patterns below are valid for both Python's ``re`` and RE2, so the Arrow writer (DuckDB
``COPY``) defuses columns with the same rule as the Python writer does cells.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: Whitespace a spreadsheet may skip before it looks for a formula sign (ASCII and Unicode).
_SPACE = " \t\n\r\f\v\x00\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

#: Text that starts like a formula: an optional run of whitespace, then a formula sign.
FORMULA_START = f"^[{_SPACE}]*[=+\\-@\t\r\n\x00\uff1d\uff0b\uff0d\uff20]"

#: A plain number, which is safe to leave as it is even when it starts with a sign.
PLAIN_NUMBER = r"^-?[0-9][0-9,]*(\.[0-9]+)?([eE][+-]?[0-9]+)?%?$"

_FORMULA = re.compile(FORMULA_START)
_NUMBER = re.compile(PLAIN_NUMBER)
_NEEDS_QUOTES = re.compile('[,"\r\n]')


def safe_cell(value: Any) -> str:
    """Text for one CSV cell, with a ``'`` in front if a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return "'" + text if _FORMULA.match(text) and not _NUMBER.match(text) else text


def _field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text


def csv_text(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    """CSV (``\\n`` line ends, minimal quoting, CR and LF always quoted), every cell made safe."""
    out = io.StringIO()
    for row in chain([header] if header is not None else [], rows):
        out.write(",".join(_field(safe_cell(c)) for c in row) + "\n")
    return out.getvalue()


def csv_bytes(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> bytes:
    """:func:`csv_text` as UTF-8."""
    return csv_text(header, rows).encode("utf-8")


def defused(column: pa.Array) -> pa.Array:
    """An Arrow column with :func:`safe_cell`'s rule applied to its text. Dictionary-encoded
    text is defused in its dictionary, once per distinct value; other types pass through."""
    if pa.types.is_dictionary(column.type):
        return pa.DictionaryArray.from_arrays(column.indices, defused(column.dictionary))
    if not pa.types.is_string(column.type):
        return column
    risky = pc.and_(
        pc.match_substring_regex(column, FORMULA_START), pc.invert(pc.match_substring_regex(column, PLAIN_NUMBER))
    )
    risky = pc.fill_null(risky, False)
    if not pc.any(risky).as_py():
        return column
    return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
