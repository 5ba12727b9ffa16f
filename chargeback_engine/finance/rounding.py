"""Rounding to a currency's minor unit without losing a cent.

Each amount is truncated toward minus infinity; the units still missing to reach the
rounded grand total go one each to the largest remainders, ties to the earlier position.
This is the largest-remainder rule of :func:`chargeback_engine.money.split`, applied to
signed amounts (invoice lines include credits), which ``split`` does not take as weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from chargeback_engine.money import minor_units, quantum


def round_total(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(minor_units(currency)), rounding=ROUND_HALF_EVEN)


def round_conserving(amounts: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Round ``amounts`` to the currency's minor unit so they sum to their rounded total.

    The total is rounded half-even; the leftover is provably between 0 and ``len(amounts)``
    units, so every part moves by less than one unit.
    """
    unit = quantum(minor_units(currency))
    target = round_total(sum(amounts, Decimal(0)), currency)
    floors = [a.quantize(unit, rounding=ROUND_FLOOR) for a in amounts]
    leftover = int((target - sum(floors, Decimal(0))) / unit)
    by_remainder = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] - floors[i]), i))
    for i in by_remainder[:leftover]:
        floors[i] += unit
    return floors
