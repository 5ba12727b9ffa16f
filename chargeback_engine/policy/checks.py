"""Helpers for allocators' ``check()``: the semantic checks many methods share.

An allocator's ``check(params, policy)`` returns :class:`~chargeback_engine.components.Finding`
objects whose paths are relative to its ``allocate:`` block; the kernel locates them in the
policy file. These helpers build such findings with the kernel's wording, and read the
driver rows that validation looks into.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import duckdb

from chargeback_engine.components import Finding, JsonPath
from chargeback_engine.errors import InputError, excerpt
from chargeback_engine.policy.paths import contained_path
from chargeback_engine.policy.policy_model import Driver, Policy
from chargeback_engine.sql_common import connect


def known_cost_centers(policy: Policy) -> frozenset[str]:
    """Cost centers money may go to: those declared, plus the unallocated bucket."""
    return frozenset(cc.id for cc in policy.cost_centers) | {policy.unallocated}


def suggestion(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for a near miss (case-insensitive first), else ``""``."""
    choices = list(choices)
    folded = {c.casefold(): c for c in choices}
    match = folded.get(name.casefold())
    if match is None:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.75)
        match = close[0] if close else None
    return f"; did you mean {match!r}?" if match else ""


def unknown_cost_centers(
    policy: Policy, ids: str | Mapping[str, Any] | Iterable[str], at: JsonPath = ()
) -> list[Finding]:
    """Findings for every cost-center id in ``ids`` that ``policy`` does not declare.

    ``ids`` is one id, a mapping keyed by ids (``splits``), or a list of ids (``among``);
    ``at`` is its path inside the ``allocate:`` block, e.g. ``("splits",)``.
    """
    if isinstance(ids, str):
        named: list[tuple[JsonPath, Any]] = [(at, ids)]
    elif isinstance(ids, Mapping):
        named = [((*at, key), key) for key in ids]
    else:
        named = [((*at, index), value) for index, value in enumerate(ids)]
    known = known_cost_centers(policy)
    return [
        Finding(
            path, f"unknown cost center {value!r}; declare it under spec.cost_centers{suggestion(str(value), known)}"
        )
        for path, value in named
        if value not in known
    ]


def driver_rows(driver: Driver, policy_file: str | None) -> list[dict[str, str | None]]:
    """A driver's rows as text (``period``, ``cost_center``, ``quantity``): inline, or its file.

    A relative file is read next to the policy; CSV is read as text, Parquet as stored.
    Raises :class:`~chargeback_engine.errors.InputError` naming the file when it cannot be read.
    """
    if driver.file is None:
        return [{"period": p, "cost_center": cc, "quantity": str(q)} for p, cc, q in driver.inline]
    path = contained_path(policy_file, driver.file)  # a policy may not reach outside its folder
    if not path.is_file():
        raise InputError(f"{path}: driver {driver.id!r} file not found")
    reader = "read_parquet(?)" if path.suffix == ".parquet" else "read_csv(?, all_varchar = true, header = true)"
    try:
        table = connect().sql(f"SELECT * FROM {reader}", params=[str(path)]).to_arrow_table()
    except duckdb.Error as error:
        raise InputError(f"{path}: driver {driver.id!r} cannot be read: {error}") from None
    missing = {"period", "cost_center", "quantity"} - set(table.column_names)
    if missing:
        raise InputError(f"{path}: driver {driver.id!r} lacks column(s) {', '.join(sorted(missing))}")
    return [{k: None if v is None else str(v) for k, v in row.items()} for row in table.to_pylist()]


def row_quantity(driver_id: str, number: int, row: Mapping[str, str | None]) -> Decimal:
    """A driver row's quantity: a finite number, zero or more (empty is zero); else an
    :class:`InputError` naming the driver and the data row. The run and ``validate`` share it."""
    try:
        quantity = Decimal(row["quantity"] or "0")
    except ArithmeticError:
        raise InputError(f"driver {driver_id!r}: quantity {excerpt(row['quantity'])} is not a number") from None
    problem = "not a finite number" if not quantity.is_finite() else "negative" if quantity < 0 else None
    if problem:
        raise InputError(
            f"driver {driver_id!r}: data row {number} ({row['cost_center']}, {row['period']}): "
            f"quantity {quantity} is {problem}; a usage quantity is zero or more"
        )
    return quantity
