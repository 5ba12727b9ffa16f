from decimal import Context, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE, minor_units, split

amounts = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=LEDGER_SCALE, allow_nan=False)
#: Wide enough for any ledger amount (38 digits): the tests' own sums must not round.
WIDE = Context(prec=80)
weights = st.lists(st.decimals(min_value=0, max_value=Decimal("1e6"), places=6), min_size=1, max_size=50).filter(
    lambda ws: sum(ws) > 0
)


@given(amounts, weights)
def test_split_conserves_every_unit(amount, ws):
    parts = split(amount, ws)
    with localcontext(WIDE):
        assert sum(parts) == amount
        assert all(p == p.quantize(LEDGER_QUANTUM) for p in parts)


@given(amounts, weights)
def test_split_is_within_one_unit_of_exact_share(amount, ws):
    total = sum(ws)
    with localcontext(WIDE):
        for part, w in zip(split(amount, ws), ws):
            assert abs(part - amount * w / total) < LEDGER_QUANTUM


@given(amounts, weights)
def test_credits_split_as_mirror_of_charges(amount, ws):
    with localcontext(WIDE):
        assert split(-amount, ws) == [-p for p in split(amount, ws)]


def test_one_cent_split_one_to_one_goes_to_the_first_by_tie_break():
    assert split(Decimal("0.01"), [Decimal(1), Decimal(1)], scale=2) == [Decimal("0.01"), Decimal("0.00")]


def test_smallest_ledger_unit_is_never_lost():
    parts = split(LEDGER_QUANTUM, [Decimal(1)] * 3)
    assert sorted(parts, reverse=True) == [LEDGER_QUANTUM, 0, 0]


@pytest.mark.parametrize(
    "currency,digits",
    [
        ("USD", 2),
        ("JPY", 0),
        ("KWD", 3),
        ("eur", 2),
        ("jpy", 0),
        ("CLF", 4),
        ("HUF", 2),
        ("IQD", 3),
        ("XAU", 2),
        ("XYZ", 2),
    ],
)
def test_minor_units(currency, digits):
    assert minor_units(currency) == digits


def test_split_refuses_amounts_finer_than_its_scale():
    with pytest.raises(ValueError, match="digits after the point"):
        split(Decimal("0.001"), [Decimal(1)], scale=2)


@pytest.mark.parametrize(
    "amount", ["12345678901234567890.000000000000000001", "-99999999999999999999.999999999999999999"]
)
def test_amounts_wider_than_28_digits_are_split_exactly(amount):
    parts = split(Decimal(amount), [Decimal(1), Decimal(2), Decimal(7)])
    with localcontext(WIDE):  # the test's own sums and negations must not round either
        assert sum(parts) == Decimal(amount)
        assert split(-Decimal(amount), [Decimal(1), Decimal(2), Decimal(7)]) == [-p for p in parts]


def test_equal_remainders_tie_exactly_and_the_rotation_breaks_them() -> None:
    """0.01 by 1:7:7 leaves three remainders of exactly 10/15 of a unit; a finite-precision
    quotient would see them differ in its last digit and ignore the rotation."""
    assert split(Decimal("0.01"), [Decimal(1), Decimal(7), Decimal(7)], rotation=2) == [
        Decimal("0.000666666666666667"),
        Decimal("0.004666666666666666"),
        Decimal("0.004666666666666667"),
    ]
    assert split(Decimal("0.01"), [Decimal(1), Decimal(7), Decimal(7)], rotation=1) == [
        Decimal("0.000666666666666666"),
        Decimal("0.004666666666666667"),
        Decimal("0.004666666666666667"),
    ]
