"""Exact money: conserved splits by the largest-remainder method.

Every place that turns one amount into several (allocation shares, invoice rounding)
goes through :func:`split`, so conservation is proven once and holds everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal, localcontext

#: Digits after the point kept by the ledger: every digit FOCUS files and provider exports
#: carry (up to 18). DuckDB and Spark hold amounts as DECIMAL(38, LEDGER_SCALE), so an amount
#: is below 1e20 and its integer units (amount * 10**LEDGER_SCALE) below 1e38.
LEDGER_SCALE = 18
LEDGER_QUANTUM = Decimal(1).scaleb(-LEDGER_SCALE)

#: ISO 4217 minor units that differ from 2; invoices round to these.
_MINOR_UNITS = {
    "BHD": 3, "CLF": 4, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}


def minor_units(currency: str) -> int:
    """Digits after the point of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def quantum(scale: int) -> Decimal:
    return Decimal(1).scaleb(-scale)


def split(amount: Decimal, weights: Sequence[Decimal], scale: int = LEDGER_SCALE) -> list[Decimal]:
    """Split ``amount`` by ``weights`` into parts at ``scale`` digits that sum exactly to it.

    Each part is first truncated toward minus infinity; the units left over go one each to
    the largest remainders, ties broken by position (earlier wins). Callers order ``weights``
    deterministically (by cost-center id), which makes the tie-break deterministic too.
    Negative amounts (credits) split the same way, mirrored, so split(-a) == -split(a).
    """
    if not weights:
        raise ValueError("split needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    unit = quantum(scale)
    # Every step, negation, sums and the leftover units included, runs at 80 digits: the
    # default 28 would silently round an amount of 1e10 and more at 18 digits after the point.
    with localcontext() as ctx:
        ctx.prec = 80
        total_weight = sum(weights, Decimal(0))
        if total_weight == 0:
            raise ValueError("weights must not all be zero")
        if amount != amount.quantize(unit):
            raise ValueError(f"{amount} has more than {scale} digits after the point")
        if amount < 0:
            return [-part for part in split(-amount, weights, scale)]
        exact = [amount * w / total_weight for w in weights]
        floors = [x.quantize(unit, rounding=ROUND_FLOOR) for x in exact]
        leftover_units = int((amount - sum(floors, Decimal(0))) / unit)
        by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
        for i in by_remainder[:leftover_units]:
            floors[i] += unit
    return floors
