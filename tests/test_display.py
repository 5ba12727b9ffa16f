"""Human formatting of money: minor units and separators from CLDR, never -0.00, exact round trip."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from babel import Locale
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine import display
from chargeback_engine.money import minor_units

EN = Locale.parse("en_US")


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "expected"),
    [
        ("en_US", "25397.9564900716", "USD", "25,397.96 USD"),
        ("de_DE", "25397.9564900716", "USD", "25.397,96 USD"),
        ("en_US", "1234.5", "JPY", "1,234 JPY"),  # half-even, no minor unit
        ("en_US", "12.3456", "KWD", "12.346 KWD"),  # three digits
        ("en_US", "-0.0001", "USD", "0.00 USD"),  # never -0.00
        ("en_US", "-1234567.891", "EUR", "-1,234,567.89 EUR"),
        ("hu_HU", "12345.675", "HUF", "12\xa0345,68 HUF"),  # ISO 4217 keeps the fillér; grouped the Hungarian way
    ],
)
def test_money_in_the_readers_format(locale: str, amount: str, currency: str, expected: str) -> None:
    assert display.money(Decimal(amount), currency, locale=Locale.parse(locale)) == expected


def test_the_locale_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEBACK_LOCALE", "de_CH")
    assert display.money(Decimal("1234.5"), "CHF") == "1'234.50 CHF"
    monkeypatch.setenv("CHARGEBACK_LOCALE", "xx_NOPE")
    assert display.reader_locale() == EN
    monkeypatch.delenv("CHARGEBACK_LOCALE")
    monkeypatch.setenv("LC_ALL", "C")
    assert display.reader_locale() == EN  # C and POSIX read as en_US


def test_names_and_shares() -> None:
    assert display.cost_center("CC-1", {"CC-1": "Payments"}) == "CC-1 Payments"
    assert display.cost_center("CC-2", {"CC-1": "Payments"}) == "CC-2"
    assert display.share(Decimal(1) / 8, locale=EN) == "12.5%"
    assert display.percent(None) == "n/a"


@given(
    st.decimals(min_value=-(10**15), max_value=10**15, places=18, allow_nan=False, allow_infinity=False),
    st.sampled_from(["USD", "JPY", "KWD", "EUR"]),
)
def test_the_display_is_the_amount_rounded_half_even(amount: Decimal, currency: str) -> None:
    shown = display.money(amount, currency, locale=EN)
    text, code = shown.split(" ")
    digits = minor_units(currency)
    assert code == currency
    assert Decimal(text.replace(",", "")) == amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
    assert not text.startswith("-") or Decimal(text.replace(",", "")) < 0
