"""Money, shares and cost centers as people read them: the one home of human formatting.

Human output (terminal tables, reports, alerts, messages, Markdown) shows an amount at its
currency's minor unit, grouped the reader's way (``25,397.96 USD``, ``25.397,96 USD``), a
cost center's name beside its id, and shares as percents. Machine output (JSON, CSV,
Parquet) never comes through here: it keeps the exact amount at whatever scale the ledger
has. Separators and grouping come from CLDR through Babel; the digits of the currency's minor
unit (the unit invoices round to) from ISO 4217, :func:`chargeback_engine.money.minor_units`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError, default_locale
from babel.numbers import format_decimal

from chargeback_engine.money import minor_units

#: Environment variable naming the locale of human output (``de_CH``); else LC_ALL, LC_NUMERIC, LANG.
LOCALE_ENV = "CHARGEBACK_LOCALE"
FALLBACK_LOCALE = "en_US"


@lru_cache(maxsize=16)
def _locale(name: str | None) -> Locale:
    try:
        return Locale.parse(name or FALLBACK_LOCALE)
    except (ValueError, UnknownLocaleError):
        return Locale.parse(FALLBACK_LOCALE)


def reader_locale() -> Locale:
    """``CHARGEBACK_LOCALE``, else the POSIX locale variables, else en_US (also for C and POSIX)."""
    name = os.environ.get(LOCALE_ENV) or default_locale("LC_NUMERIC")
    return _locale(FALLBACK_LOCALE if name in (None, "en_US_POSIX") else name)


def number(value: Decimal, digits: int, *, signed: bool = False, locale: Locale | None = None) -> str:
    """``value`` rounded half-even to ``digits`` after the point, grouped; never ``-0.00``."""
    rounded = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
    rounded = rounded if rounded else abs(rounded)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    text = format_decimal(rounded, format=pattern, locale=locale or reader_locale(), decimal_quantization=False)
    return f"+{text}" if signed and rounded > 0 else text


def money(
    amount: Decimal | None, currency: str, *, signed: bool = False, code: bool = True, locale: Locale | None = None
) -> str:
    """``25,397.96 USD``: the currency's minor unit, grouped; ``code=False`` leaves the code to a column header."""
    if amount is None:
        return ""
    text = number(amount, minor_units(currency), signed=signed, locale=locale)
    return f"{text} {currency}" if code else text


def percent(value: Decimal | None, *, digits: int = 1, locale: Locale | None = None) -> str:
    """A value already in percent (``12.3``) as ``12.3%``; ``n/a`` when there is none (a zero base)."""
    return "n/a" if value is None else number(value, digits, locale=locale) + "%"


def share(fraction: Decimal, *, digits: int = 1, locale: Locale | None = None) -> str:
    """A weight out of 1 (``0.125``) as ``12.5%``."""
    return percent(fraction * 100, digits=digits, locale=locale)


def cost_center(cost_center_id: str, names: Mapping[str, str]) -> str:
    """``CC-1001 Payments``: the id people search for, then the name they recognise."""
    name = names.get(cost_center_id)
    return f"{cost_center_id} {name}" if name and name != cost_center_id else cost_center_id
