"""The ``when:`` language compiled to SQL: one compiler for every data plane.

A compiled condition is a boolean SQL expression over the match key's columns, which the
plane holds as text (``CAST(... AS VARCHAR)``), a missing value as NULL. Every field test
is made two-valued (a NULL comparison counts as false), so ``not``, ``any`` and ``all``
keep the Python semantics of :mod:`chargeback_engine.policy.match` exactly: a missing
value equals nothing, is in no list and matches no regex, and satisfies ``not_in`` and
``exists: false``.

Only regular expressions differ by dialect. DuckDB matches with RE2, in linear time;
Spark with Java's engine, anchored the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chargeback_engine.policy.match import Condition, _All, _Any, _Field, _Not
from chargeback_engine.sql_common import Dialect, sql_text

#: The SQL expression of a key field (a FOCUS column or ``tags.<key>``) in the plane.
ColumnOf = Callable[[str], str]


def condition_sql(condition: Condition, column: ColumnOf, dialect: Dialect = "duckdb") -> str:
    """``condition`` as a two-valued SQL predicate over the columns ``column`` names."""

    def text(value: str) -> str:
        return sql_text(value.replace("\\", "\\\\") if dialect == "spark" else value)

    def values(items: Iterable[str]) -> str:
        return ", ".join(text(v) for v in sorted(items))

    def compiled(c: Condition) -> str:
        if isinstance(c, _All):
            return "(" + " AND ".join(compiled(p) for p in c.parts) + ")" if c.parts else "TRUE"
        if isinstance(c, _Any):
            return "(" + " OR ".join(compiled(p) for p in c.parts) + ")" if c.parts else "FALSE"
        if isinstance(c, _Not):
            return f"(NOT {compiled(c.part)})"
        if not isinstance(c, _Field):
            raise TypeError(f"cannot compile {type(c).__name__} to SQL")
        col = column(c.name)
        if c.op == "exists":
            return f"({col} IS {'NOT ' if c.operand else ''}NULL)"
        if c.op == "not_in":
            return f"({col} IS NULL OR {col} NOT IN ({values(c.operand)}))"
        if c.op == "eq":
            return f"coalesce({col} = {text(c.operand)}, FALSE)"
        if c.op == "in":
            return f"coalesce({col} IN ({values(c.operand)}), FALSE)"
        pattern = c.operand.pattern
        if dialect == "spark":
            return f"coalesce({col} RLIKE {text('^(?:' + pattern + ')$')}, FALSE)"
        return f"coalesce(regexp_full_match({col}, {text(pattern)}), FALSE)"

    return compiled(condition)


def first_match_sql(conditions: Iterable[Condition], column: ColumnOf, dialect: Dialect = "duckdb") -> str:
    """The index of the first condition that holds (in order), NULL when none does."""
    whens = [f"WHEN {condition_sql(c, column, dialect)} THEN {i}" for i, c in enumerate(conditions)]
    return f"CASE {' '.join(whens)} ELSE NULL END" if whens else "CAST(NULL AS INTEGER)"
