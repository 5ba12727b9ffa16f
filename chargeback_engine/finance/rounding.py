"""Rounding to a currency's minor unit without losing a cent.

A period is rounded top down. First each cost center's total (per currency and treatment)
is rounded so that the totals add up to the period total rounded half-even; then the lines
of each cost center are rounded so that they add up to its rounded total. A cost center
that nets to zero (a fully redistributed pool) therefore shows 0.00, and the lines of an
invoice add up to the invoice.

Both steps are :func:`round_to`, the largest-remainder (Hamilton) rule on signed amounts:
every amount is rounded down, and the residue units still missing to the target go one
each to the largest remainders. It moves each amount by less than one unit, and by at most
half a unit unless the residue forces otherwise. :func:`chargeback_engine.money.split`
cannot serve here: it apportions a residue in proportion to the remainders, which can hand
one amount two units (0.0095 and eleven times 0.0005 would round to 0.02 and zeros). Both
hand out the leftover units the same way, through :func:`chargeback_engine.money.largest_remainders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from chargeback_engine.costdb.tables import exact
from chargeback_engine.money import largest_remainders, minor_units, quantum


def round_total(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(minor_units(currency)), rounding=ROUND_HALF_EVEN)


@exact
def round_to(amounts: Sequence[Decimal], target: Decimal, currency: str) -> list[Decimal]:
    """Round signed ``amounts`` to the currency's minor unit so that they sum to ``target``.

    ``target`` must lie between the sum of the amounts rounded down and that plus one unit
    per amount with a remainder, as the rounded total of the amounts always does. Ties go
    to the earlier position; callers order amounts by cost center and line.
    """
    unit = quantum(minor_units(currency))
    floors = [a.quantize(unit, rounding=ROUND_FLOOR) for a in amounts]
    remainders = [a - f for a, f in zip(amounts, floors)]
    residue = int((target - sum(floors, Decimal(0))) / unit)
    if not 0 <= residue <= sum(1 for r in remainders if r):
        raise ValueError(f"cannot round {len(amounts)} amounts summing to {sum(amounts, Decimal(0))} to {target}")
    for i in largest_remainders(remainders, residue):
        floors[i] += unit
    return floors


def round_groups(groups: Sequence[Sequence[Decimal]], currency: str) -> list[list[Decimal]]:
    """Round each group's total so the totals add up to the rounded grand total, then each group's amounts.

    A group is one cost center's lines: its rounded amounts add up to its rounded total.
    """
    exact_totals = [sum(group, Decimal(0)) for group in groups]
    totals = round_conserving(exact_totals, currency) if groups else []
    return [round_to(group, total, currency) for group, total in zip(groups, totals)]


def round_conserving(amounts: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Round ``amounts`` so they sum to their own total rounded half-even."""
    return round_to(amounts, round_total(sum(amounts, Decimal(0)), currency), currency)
