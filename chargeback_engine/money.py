"""Exact money: conserved splits by the largest-remainder method.

Every place that turns one amount into several (allocation shares, invoice rounding)
goes through :func:`split`, so conservation is proven once and holds everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext

from babel.numbers import get_currency_precision
from iso4217 import Currency

#: Digits after the point kept by the ledger: every digit FOCUS files and provider exports
#: carry (up to 18). DuckDB and Spark hold amounts as DECIMAL(38, LEDGER_SCALE), so an amount
#: is below 1e20 and its integer units (amount * 10**LEDGER_SCALE) below 1e38.
LEDGER_SCALE = 18
LEDGER_QUANTUM = Decimal(1).scaleb(-LEDGER_SCALE)


def minor_units(currency: str) -> int:
    """Digits after the point of the currency's minor unit (USD 2, JPY 0, KWD 3, HUF 2): what
    invoices and journals round to, and what amounts are shown with.

    ISO 4217's exponent, from the ``iso4217`` package (the standard's published list, updated
    with each amendment): the books round as banks and ERPs do. For the codes ISO 4217 gives no
    minor unit (gold, SDRs) or does not list, CLDR's digits through Babel (2 when unknown).
    """
    code = currency.upper()
    try:
        exponent = Currency(code).exponent
    except ValueError:
        exponent = None
    return get_currency_precision(code) if exponent is None else int(exponent)


def quantum(scale: int) -> Decimal:
    return Decimal(1).scaleb(-scale)


def estimate(value: Decimal, scale: int) -> Decimal:
    """A forecast or expected amount: rounded to ``scale`` digits (a model is no more precise),
    held at the ledger's scale like every amount, so machine output has one scale."""
    return value.quantize(quantum(scale)).quantize(LEDGER_QUANTUM)


#: Multiplier of the tie-break's hash (Knuth's multiplicative hashing, modulo 2**32).
_TIE_HASH = 2654435761


def tie_rotation(line: int, shares: int) -> int:
    """Which position wins the first tie of ``line``'s split into ``shares`` parts.

    A fixed order would hand every leftover unit of an even split to the lowest cost-center
    id, line after line (at 10M lines a steady +5e-6 for the first id of 8). Rotating the
    order by a hash of the line keeps the rule deterministic and spreads the leftovers evenly.
    """
    return (line * _TIE_HASH) % 4294967296 % shares


def tie_order(position: str, line: str, shares: str) -> str:
    """:func:`tie_rotation` as SQL (DuckDB and Spark alike): the rank of ``position`` among
    tied remainders, 0 first."""
    return f"(({position}) + ({shares}) - (({line}) * {_TIE_HASH}) % 4294967296 % ({shares})) % ({shares})"


def split(amount: Decimal, weights: Sequence[Decimal], scale: int = LEDGER_SCALE, rotation: int = 0) -> list[Decimal]:
    """Split ``amount`` by ``weights`` into parts at ``scale`` digits that sum exactly to it.

    Each part is first truncated toward minus infinity; the units left over go one each to
    the largest remainders, ties broken by position starting at ``rotation`` (then
    ``rotation + 1``, wrapping round). Callers order ``weights`` deterministically (by
    cost-center id), which makes the tie-break deterministic too; the engine rotates by
    :func:`tie_rotation` of the line. Negative amounts (credits) split the same way,
    mirrored, so split(-a) == -split(a).
    """
    if not weights:
        raise ValueError("split needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    with localcontext() as ctx:
        ctx.prec = 80  # the default 28 digits would round an amount of 1e10 and more at 18 digits
        if amount != amount.quantize(quantum(scale)):
            raise ValueError(f"{amount} has more than {scale} digits after the point")
        if amount < 0:
            return [-part for part in split(-amount, weights, scale, rotation)]
        # Integers throughout, as the data planes compute: a finite-precision remainder would
        # see a tie as two slightly different numbers.
        digits = max(0, *(-int(Decimal(w).as_tuple().exponent) for w in weights))
        ints = [int(Decimal(w).scaleb(digits)) for w in weights]
        total = sum(ints)
        if total == 0:
            raise ValueError("weights must not all be zero")
        quotient, remainder = divmod(int(amount.scaleb(scale)), total)
        units = [quotient * w + remainder * w // total for w in ints]
        leftover = remainder - sum(remainder * w // total for w in ints)
        for i in largest_remainders([remainder * w % total for w in ints], leftover, rotation):
            units[i] += 1
        return [Decimal(u).scaleb(-scale) for u in units]


def largest_remainders(remainders: Sequence[int | Decimal], count: int, rotation: int = 0) -> list[int]:
    """Positions of the ``count`` largest ``remainders``: the ones that get a leftover unit
    in the largest-remainder method. Ties go by position, starting at ``rotation``."""
    n = len(remainders)
    return sorted(range(n), key=lambda i: (-remainders[i], (i - rotation) % n))[:count]
