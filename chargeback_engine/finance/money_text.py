"""Amounts as finance writes them: plain positional text, and exactly the currency's minor-unit digits.

Canonical JSON, content hashes and ids are :mod:`chargeback_engine.canonical`'s.
"""

from __future__ import annotations

from decimal import Decimal

from chargeback_engine.money import minor_units, quantum


def money_text(amount: Decimal) -> str:
    """Plain positional notation (never an exponent), so text and hashes are stable."""
    return format(amount, "f")


def minor(amount: Decimal, currency: str) -> str:
    """An amount written with exactly the currency's minor-unit digits (JPY 0, USD 2, KWD 3)."""
    return money_text(amount.quantize(quantum(minor_units(currency))))
